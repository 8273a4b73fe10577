// A charity's public ledger: received, matched, disbursed, each disbursement with its evidence.
import { $, api, auth, boot, el, errorText, idFromPath, money, num, onLangChange, parseAmount, t, toast, when } from "./common.js";
import { hex, sha256 } from "./merkle.js";

const charityId = idFromPath("/charities/");
const state = { charity: null, disbursements: [], evidence: null };
const currency = () => (state.charity && (state.charity.currency || (state.charity.totals && state.charity.totals.currency))) || "IDR";

function render() {
  const c = state.charity;
  if (!c) return;
  document.title = `Panen · ${c.name}`;
  $("#name").textContent = c.name;
  $("#description").textContent = c.description;
  const tot = c.totals || {};
  const received = tot.received ?? ((tot.donated || 0) + (tot.pledged || 0));
  $("#c-received").textContent = money(received, currency());
  $("#c-matched").textContent = money(tot.matched || 0, currency());
  $("#c-disbursed").textContent = money(tot.disbursed || 0, currency());
  $("#c-balance").textContent = money(tot.balance ?? (received + (tot.matched || 0) - (tot.disbursed || 0)), currency());
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
      el("ul", {}, ...d.allocations.map((a) => el("li", { class: "mono", text: `${a.source_kind || a.kind || ""} ${a.source_id || a.donation_id || ""} → ${money(a.amount, currency())}` })))) : null))
    : [el("p", { class: "muted", text: "–" })]));
  const mine = auth.user && (auth.user.id === c.admin_user_id || (auth.user.roles || []).includes("admin"));
  $("#admin").classList.toggle("hidden", !mine);
}

async function load() {
  try {
    const [charity, disb] = await Promise.all([
      api("GET", `/api/charities/${encodeURIComponent(charityId)}`),
      api("GET", `/api/charities/${encodeURIComponent(charityId)}/disbursements`).catch(() => ({ disbursements: [] })),
    ]);
    state.charity = charity;
    state.disbursements = disb.disbursements || [];
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
