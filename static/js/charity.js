// A charity's public ledger: received, matched, disbursed, each disbursement with its evidence.
import { $, api, auth, boot, el, errorText, idFromPath, money, num, onLangChange, parseAmount, t, toast, when } from "./common.js";
import { hex, sha256 } from "./merkle.js";

const charityId = idFromPath("/charities/");
const state = { charity: null, disbursements: [], evidence: null, report: {}, currency: "IDR" };
const currency = () => state.currency || "IDR";

function render() {
  const c = state.charity;
  if (!c) return;
  document.title = `Panen · ${c.name}`;
  $("#name").textContent = c.name;
  $("#description").textContent = c.description;
  // The report is per currency; the page shows the currency with the most received.
  const tot = state.report || {};
  $("#c-received").textContent = money(tot.received || 0, currency());
  $("#c-matched").textContent = money(tot.matched || 0, currency());
  $("#c-disbursed").textContent = money(tot.disbursed || 0, currency());
  $("#c-balance").textContent = money(tot.balance || 0, currency());
  $("#campaigns").replaceChildren(...(c.campaigns || []).map((k) => el("div", { class: "row" },
    el("strong", { class: "grow", text: k.title }),
    el("span", { class: "muted", text: `${num(k.goal_units)} × ${k.unit_name} · ${money(k.unit_cost, k.currency)}` }))));
  $("#disbursements").replaceChildren(...(state.disbursements.length ? state.disbursements.map((d) => el("div", { class: "card disbursement" },
    el("div", { class: "row" }, el("strong", { class: "grow", text: d.purpose }), el("strong", { text: money(d.amount, d.currency || currency()) })),
    el("div", { class: "muted", text: [when(d.created_at), d.units ? `${num(d.units)} ${t("units")}` : null].filter(Boolean).join(" · ") }),
    el("div", { class: "mono" }, `${t("evidence")} SHA-256: `, el("span", { class: "evidence-hash", text: d.evidence_sha256 })),
    d.evidence_url ? el("a", { href: d.evidence_url, text: d.evidence_url, rel: "noopener noreferrer", target: "_blank" }) : null,
    d.entry_index !== undefined && d.entry_index !== null ? el("div", { class: "muted", text: t("entry", { n: d.entry_index }) }) : null,
    Array.isArray(d.allocations) && d.allocations.length ? el("details", {}, el("summary", { text: `${d.allocations.length} ×` }),
      el("ul", {}, ...d.allocations.map((a) => el("li", { class: "mono", text: `${a.kind || ""} · ${t("entry", { n: a.entry_index })} · ${when(a.received_at)} → ${money(a.amount, d.currency || currency())}` })))) : null))
    : [el("p", { class: "muted", text: "–" })]));
  const mine = auth.user && (auth.user.id === c.admin_user_id || (auth.user.roles || []).includes("admin"));
  $("#admin").classList.toggle("hidden", !mine);
}

async function load() {
  try {
    const base = `/api/charities/${encodeURIComponent(charityId)}`;
    const [charity, disb, report] = await Promise.all([
      api("GET", base), api("GET", `${base}/disbursements`), api("GET", `${base}/report`),
    ]);
    state.charity = charity;
    state.disbursements = disb.disbursements || [];
    const byCurrency = Object.entries(report.currencies || {}).sort((a, b) => (b[1].received || 0) - (a[1].received || 0));
    if (byCurrency.length) [state.currency, state.report] = byCurrency[0];
  } catch (err) {
    $("#name").textContent = err.status === 404 ? t("not_found") : errorText(err);
    return;
  }
  render();
}

// The evidence is hashed here in the browser; only its SHA-256 goes to the server and the log.
$("#x-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  state.evidence = file ? hex(await sha256(new Uint8Array(await file.arrayBuffer()))) : null;
  $("#x-hash").textContent = state.evidence ? `SHA-256: ${state.evidence}` : "";
});

$("#disburse-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("#disburse-form .form-error");
  out.textContent = "";
  const amount = parseAmount($("#x-amount").value, currency());
  if (!amount || !state.evidence) { out.textContent = `${t("amount")} / ${t("evidence")}?`; return; }
  const body = { amount, purpose: $("#x-purpose").value.trim(), evidence_sha256: state.evidence };
  if ($("#x-url").value.trim()) body.evidence_url = $("#x-url").value.trim();
  if ($("#x-units").value) body.units = Number($("#x-units").value);
  try {
    await api("POST", `/api/charities/${encodeURIComponent(charityId)}/disbursements`, body);
    e.target.reset();
    $("#x-hash").textContent = "";
    toast(t("disbursed"));
    await load();
  } catch (err) { out.textContent = errorText(err); }
});

onLangChange(render);
boot("charity").then(load);
