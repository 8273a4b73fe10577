// The farmer's packing list for a session: what to pack for whom (printable, and as CSV),
// and each parcel moved along: packed, shipped with its tracking number, delivered, or not.
import { $, ApiError, api, auth, boot, el, errorText, num, onLangChange, requireLogin, t, toast } from "./common.js";

const params = new URLSearchParams(location.search);
const sessionId = params.get("session_id") || "";
const state = { farmerId: params.get("farmer_id") || "", list: null };

function url(csv) {
  const all = $("#all-boxes").checked ? "&boxes=all" : "";
  return `/api/farmers/${encodeURIComponent(state.farmerId)}/packing-list${csv ? ".csv" : ""}?session_id=${encodeURIComponent(sessionId)}${all}`;
}

async function load() {
  if (!requireLogin()) return;
  try {
    if (!state.farmerId) state.farmerId = (await api("GET", "/api/me/farmer")).id;
    state.list = await api("GET", url(false));
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
      $("#denied").classList.remove("hidden");
      return;
    }
    throw err;
  }
  $("#packing").classList.remove("hidden");
  render();
}

function kg(grams) { return `${num(Math.round(grams / 100) / 10)} kg`; }

function render() {
  const p = state.list;
  if (!p) return;
  $("#session-title").textContent = `· ${p.session_title}`;
  $("#p-boxes").textContent = num(p.boxes);
  $("#p-units").textContent = num(p.units);
  $("#p-weight").textContent = kg(p.weight_g);
  $("#by-product").replaceChildren(...p.by_product.map((r) => el("tr", {},
    el("td", { text: `${r.product_name} (${r.unit})` }), el("td", { class: "n", text: num(r.quantity) }))));
  $("#boxes").replaceChildren(...p.shipments.map(box));
}

function box(s) {
  const items = s.items.filter((i) => i.status === "settled" || i.status === "completed");
  return el("article", { class: "card box", "data-id": s.id, "data-status": s.status },
    el("div", { class: "row" }, el("strong", { class: "grow", text: s.recipient }),
      el("span", { class: `badge st-${s.status}`, text: t(`sh_${s.status}`) })),
    el("div", { text: s.phone }),
    el("div", { text: `${s.street}, ${s.district}` }),
    el("div", { text: `${s.city}, ${s.province} ${s.postal_code}` }),
    s.notes ? el("div", { class: "muted", text: s.notes }) : null,
    el("ul", { class: "plain" }, ...items.map((i) => el("li", { text: `${i.quantity}× ${i.product_name} (${i.unit})` }))),
    el("div", { class: "muted", text: `${kg(s.weight_g)} · ${s.id}` }),
    s.tracking_number ? el("div", { class: "tracking", text: t("tracking", { courier: s.courier || "", number: s.tracking_number }) }) : null,
    controls(s));
}

function controls(s) {
  const row = el("div", { class: "row mt-s no-print" });
  const go = (status, extra = {}) => async (e) => {
    e.currentTarget.disabled = true;
    try {
      await api("POST", `/api/shipments/${encodeURIComponent(s.id)}/status`, { status, ...extra });
      state.list = await api("GET", url(false));
      render();
    } catch (err) {
      toast(errorText(err), "error");
      e.currentTarget.disabled = false;
    }
  };
  if (s.status === "packing") row.append(el("button", { type: "button", class: "pack", text: t("mark_packed"), onclick: go("packed") }));
  if (s.status === "packing" || s.status === "packed") {
    // One shared list of couriers to suggest (hundreds of boxes, one <datalist>).
    const courier = el("input", { "aria-label": t("courier"), class: "w-auto courier", list: "couriers", value: "JNE", maxlength: 40, size: 8 });
    const tracking = el("input", { class: "grow w-auto tracking-input", "aria-label": t("tracking_number"), placeholder: t("tracking_number"), maxlength: 60 });
    row.append(courier, tracking, el("button", { type: "button", class: "ship", text: t("mark_shipped"),
      onclick: (e) => go("shipped", { courier: courier.value, tracking_number: tracking.value.trim() })(e) }));
  }
  if (s.status === "shipped") row.append(el("button", { type: "button", class: "deliver", text: t("mark_delivered"), onclick: go("delivered") }));
  if (["packing", "packed", "shipped", "delivered"].includes(s.status)) {
    row.append(el("button", { type: "button", class: "secondary fail", text: t("mark_failed"), onclick: (e) => {
      const reason = prompt(t("fail_reason"));
      if (reason) go("failed", { reason })(e);
    } }));
  }
  return row;
}

// The CSV needs the login, which a plain link cannot carry: fetched, then saved.
async function downloadCsv() {
  const res = await fetch(url(true), { headers: { Authorization: `Bearer ${auth.token}` } });
  if (!res.ok) { toast(t("error"), "error"); return; }
  const link = el("a", { href: URL.createObjectURL(await res.blob()), download: `packing-${sessionId}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

document.body.append(el("datalist", { id: "couriers" },
  ...["JNE", "J&T", "SiCepat", "AnterAja", "Pos Indonesia", "Ninja Xpress", "GoSend", "GrabExpress"].map((c) => el("option", { value: c }))));
$("#print").addEventListener("click", () => window.print());
$("#csv").addEventListener("click", downloadCsv);
$("#all-boxes").addEventListener("change", async () => { state.list = await api("GET", url(false)); render(); });
onLangChange(render);
boot("farmer").then(load);
