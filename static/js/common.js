// Shared by every page: the API client, the signed-in user, DOM building, money, the top bar.
import { LANGS, applyI18n, known, lang, locale, onLangChange, setLang, t } from "./i18n.js";

export { t, onLangChange, applyI18n };

// Minor-unit exponents, the same table as core/money.py.
export const EXPONENT = { IDR: 0, CNY: 2, USD: 2, SGD: 2, MYR: 2, JPY: 0 };

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
    this.details = err.details || {};
  }
}

export const auth = {
  get token() { return localStorage.getItem("panen.token"); },
  get user() {
    try { return JSON.parse(localStorage.getItem("panen.user") || "null"); } catch { return null; }
  },
  save(token, user) {
    localStorage.setItem("panen.token", token);
    localStorage.setItem("panen.user", JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem("panen.token");
    localStorage.removeItem("panen.user");
  },
  has(role) {
    const u = this.user;
    return !!u && Array.isArray(u.roles) && (u.roles.includes(role) || u.roles.includes("admin"));
  },
};

export async function api(method, path, body, { idempotencyKey, quiet401 } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    if (res.status === 401 && auth.token && !quiet401) auth.clear();  // the token expired
    throw new ApiError(res.status, data);
  }
  return data;
}

// A file sent as the request's raw body (a product photo), answered like `api`.
export async function upload(method, path, file) {
  const headers = { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  const res = await fetch(path, { method, headers, body: file });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// A random key for Idempotency-Key (crypto.randomUUID needs a secure context; this does not).
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// el("a", {href, class, text, onclick}, child, "text child") builds DOM without parsing HTML:
// every string becomes a text node, so user text can never run as markup.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    // Through the CSSOM, which the pages' CSP allows (a style="" attribute it does not).
    else if (k === "style") node.style.cssText = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "href" || k === "src") node.setAttribute(k, safeUrl(v));
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Only http(s) and same-site relative URLs reach an href or src (no javascript: links).
export function safeUrl(u) {
  const s = String(u);
  if (s.startsWith("/") && !s.startsWith("//")) return s;
  try {
    const parsed = new URL(s, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "#";
  } catch { return "#"; }
}

// The nodes among these: the DOM's own append / replaceChildren would write a null or an
// undefined as the text "null" / "undefined" (el() skips them itself).
export function present(...nodes) {
  return nodes.filter((n) => n !== null && n !== undefined && n !== false);
}

export function $(sel) { return document.querySelector(sel); }

// Format an integer of minor units without ever dividing in floating point: build the exact
// decimal string and hand it to Intl (which formats decimal strings exactly).
export function money(amount, currency = "IDR") {
  if (amount === null || amount === undefined) return "–";
  const exp = EXPONENT[currency] ?? 2;
  const neg = amount < 0;
  let digits = String(Math.abs(Math.trunc(amount))).padStart(exp + 1, "0");
  const str = exp ? `${digits.slice(0, -exp)}.${digits.slice(-exp)}` : digits;
  const fmt = new Intl.NumberFormat(locale(), {
    style: "currency", currency, minimumFractionDigits: exp, maximumFractionDigits: exp,
  });
  return fmt.format(neg ? `-${str}` : str);
}

// "50.000" / "19.99" typed by a person -> integer minor units, or null. No floats.
export function parseAmount(text, currency = "IDR") {
  const exp = EXPONENT[currency] ?? 2;
  let s = String(text).trim().replace(/\s|Rp|¥|\$/g, "");
  if (exp === 0) s = s.replace(/[.,]/g, "");  // whole rupiah: separators are only grouping
  else s = s.replace(/,(?=\d{1,2}$)/, ".").replace(/,/g, "");
  const m = /^(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m || (m[2] && m[2].length > exp)) return null;
  const value = Number(m[1] + (m[2] || "").padEnd(exp, "0"));
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

export function num(n) {
  return new Intl.NumberFormat(locale()).format(n ?? 0);
}

export function pct(bps) {
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 2 }).format(bps / 10000);
}

export function when(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

let toastTimer = null;
export function toast(message, kind = "info") {
  let box = document.getElementById("toast");
  if (!box) {
    box = el("div", { id: "toast", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  box.className = kind === "error" ? "toast error" : "toast";
  box.textContent = message;
  box.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.add("hidden"), 4000);
}

// An error as a sentence in the page's language: every code the server answers with that a
// person can meet has one; an unknown code falls back to the server's words and the code.
export function codeText(code, message, details = {}) {
  const key = `err_${code}`;
  if (!known(key)) return `${t("error")}: ${message} (${code})`;
  const field = details.field ? (known(details.field) ? t(details.field) : details.field) : "";
  const vars = { ...details, field };
  if (typeof details.available === "number") vars.available = num(details.available);
  return t(key, vars);
}

export function errorText(err) {
  if (err instanceof ApiError) return codeText(err.code, err.message, err.details);
  return `${t("error")}: ${err && err.message ? err.message : err}`;
}

export function requireLogin() {
  if (auth.token) return true;
  location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  return false;
}

// The top bar: brand, links for the roles the person holds, language switch, login/logout.
export function topbar(active) {
  const nav = el("nav", { "aria-label": "main" });
  const link = (href, key) => el("a", { href, text: t(key), "aria-current": active === key ? "page" : null });
  nav.append(link("/", "home"));
  if (auth.has("host")) nav.append(link("/host", "my_shows"));
  if (auth.has("farmer")) nav.append(link("/farmer", "farmer"));
  if (auth.user) nav.append(link("/me/orders", "my_orders"));
  nav.append(link("/verify", "verify"));
  const langSel = el("select", { "aria-label": t("language"), id: "lang" });
  for (const [code, name] of Object.entries(LANGS)) langSel.append(el("option", { value: code, text: name }));
  langSel.value = lang;
  langSel.addEventListener("change", () => setLang(langSel.value));
  nav.append(langSel);
  if (auth.user) {
    nav.append(el("span", { class: "who", text: auth.user.display_name, style: "padding:0 .3rem" }));
    nav.append(el("button", { type: "button", id: "logout", text: t("logout"), onclick: () => { auth.clear(); location.reload(); } }));
  } else {
    nav.append(link(`/login?next=${encodeURIComponent(location.pathname)}`, "login"));
  }
  const bar = el("header", { class: "topbar" }, el("a", { class: "brand", href: "/" }, el("img", { src: "/static/favicon.svg", alt: "", width: 24, height: 24, style: "vertical-align:-5px;margin-right:.35rem" }), "Panen"), nav);
  const old = document.querySelector("header.topbar");
  if (old) old.replaceWith(bar); else document.body.prepend(bar);
}

// Every page: draw the top bar, translate static text, and redraw the bar on a language change.
export async function boot(active) {
  topbar(active);
  applyI18n();
  onLangChange(() => topbar(active));
  if (auth.token) {
    try {
      const me = await api("GET", "/api/me", undefined, { quiet401: true });
      auth.save(auth.token, me.user);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) auth.clear();
    }
    topbar(active);
  }
}

export function idFromPath(prefix) {
  const rest = location.pathname.slice(prefix.length);
  return decodeURIComponent(rest.split("/")[0] || "");
}
