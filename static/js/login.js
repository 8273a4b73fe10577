import { $, api, auth, boot, errorText, t } from "./common.js";

// Where to go after logging in: a path of this site only. The browser resolves it (a
// backslash is a slash to it, "/\\evil.example" is another host) and it must stay here.
function next() {
  const n = new URLSearchParams(location.search).get("next") || "/";
  try {
    const target = new URL(n, location.origin);
    if (n.startsWith("/") && target.origin === location.origin) {
      return target.pathname + target.search + target.hash;
    }
  } catch (_) { /* not a URL at all */ }
  return "/";
}

function show() {
  const reg = location.hash === "#register";
  $("#register-box").classList.toggle("hidden", !reg);
  $("#login-box").classList.toggle("hidden", reg);
}

async function submit(form, path, body) {
  const out = form.querySelector(".form-error");
  out.textContent = "";
  try {
    const res = await api("POST", path, body);
    auth.save(res.token, res.user);
    location.href = next();
  } catch (err) {
    out.textContent = errorText(err);
  }
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submit(e.target, "/api/auth/login", { handle: $("#login-handle").value.trim(), password: $("#login-password").value });
});
$("#register-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submit(e.target, "/api/auth/register", {
    handle: $("#reg-handle").value.trim(), display_name: $("#reg-name").value.trim(), password: $("#reg-password").value,
  });
});
// The browser's own "match the requested format" says nothing: say the rule.
const handleInput = $("#reg-handle");
handleInput.addEventListener("invalid", () => {
  handleInput.setCustomValidity(handleInput.validity.patternMismatch ? t("handle_rule") : "");
});
handleInput.addEventListener("input", () => handleInput.setCustomValidity(""));
addEventListener("hashchange", show);
show();
boot("login");
