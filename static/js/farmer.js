// The farmer's dashboard: live totals across every host, by product and session, and a chart.
import { $, api, auth, boot, el, errorText, money, num, onLangChange, requireLogin, t, when } from "./common.js";
import { locale } from "./i18n.js";
import { connectionBadge, Live } from "./live.js";

const state = { farmerId: null, totals: null, points: [], chart: null, currency: "IDR", payouts: null };

function addPoint(totals, at) {
  // One point per update: the cumulative gross at that moment (seconds, for uPlot).
  const x = Math.floor((at ?? Date.now()) / 1000);
  const last = state.points[state.points.length - 1];
  if (last && last[0] === x) last[1] = totals.gross || 0;
  else state.points.push([x, totals.gross || 0]);
  if (state.points.length > 2000) state.points.shift();
}

function seriesFrom(totals) {
  // The server's running gross per minute of payment starts the chart; live frames extend it.
  if (!Array.isArray(totals.series)) return;
  state.points = totals.series.map((p) => [Math.floor(Date.parse(p.at) / 1000), p.gross])
    .filter((p) => Number.isFinite(p[0]));
}

function rowsFor(list, nameOf, linkOf) {
  return (list || []).map((r) => el("tr", {},
    el("td", {}, linkOf ? el("a", { href: linkOf(r), text: nameOf(r) }) : nameOf(r)),
    el("td", { class: "n", text: num(r.units_sold ?? r.units ?? 0) }),
    el("td", { class: "n", text: money(r.gross ?? 0, r.currency || state.currency) }),
    el("td", { class: "n", text: money(r.pledged ?? 0, r.currency || state.currency) })));
}

function render() {
  const tot = state.totals;
  if (!tot) return;
  state.currency = tot.currency || state.currency;
  const c = state.currency;
  $("#f-units").textContent = num(tot.units_sold || 0);
  $("#f-gross").textContent = money(tot.gross || 0, c);
  $("#f-pledged").textContent = money(tot.pledged || 0, c);
  $("#f-fees").textContent = money(tot.fees || 0, c);
  $("#f-pending").textContent = money(tot.payout_pending || 0, c);
  $("#f-transit").textContent = money(tot.payout_in_transit || 0, c);
  $("#f-settled").textContent = money(tot.payout_settled || 0, c);
  const tables = state.tables || tot;
  $("#by-product").replaceChildren(...rowsFor(tables.by_product, (r) => r.name || r.product_name || r.product_id));
  $("#by-session").replaceChildren(...rowsFor(tables.by_session, (r) => r.title || r.session_title || r.session_id,
    (r) => `/sessions/${encodeURIComponent(r.session_id)}`));
  $("#packing-links").replaceChildren(...(tables.by_session || []).map((r) => el("li", {},
    el("a", { href: `/farmer/packing?session_id=${encodeURIComponent(r.session_id)}&farmer_id=${encodeURIComponent(state.farmerId)}`,
      text: `${t("packing_list")}: ${r.title || r.session_id}` }))));
  drawChart();
}

// --- shipping rates: one row per zone; an empty row is a zone not shipped to ----------------

const ZONES = ["*", "jawa", "sumatera", "bali_nusa_tenggara", "kalimantan", "sulawesi", "maluku_papua"];

async function loadRates() {
  const r = await api("GET", `/api/farmers/${encodeURIComponent(state.farmerId)}/shipping?currency=IDR`);
  const by = Object.fromEntries(r.rates.map((x) => [x.zone, x]));
  $("#rates").replaceChildren(...ZONES.map((z) => el("tr", { "data-zone": z },
    el("td", { text: z === "*" ? t("zone_any") : t(`zone_${z}`) }),
    el("td", { class: "n" }, el("input", { class: "base", inputmode: "numeric", "aria-label": `${t("base_fee")} ${z}`, value: by[z] ? String(by[z].base_fee) : "" })),
    el("td", { class: "n" }, el("input", { class: "per-kg", inputmode: "numeric", "aria-label": `${t("per_kg_fee")} ${z}`, value: by[z] ? String(by[z].per_kg_fee) : "" })))));
}

async function saveRates(e) {
  e.preventDefault();
  const out = $("#rates-form .form-error");
  const rates = [];
  for (const row of document.querySelectorAll("#rates tr")) {
    const base = row.querySelector(".base").value.trim();
    const perKg = row.querySelector(".per-kg").value.trim();
    if (!base && !perKg) continue;
    rates.push({ zone: row.dataset.zone, base_fee: Number(base || 0), per_kg_fee: Number(perKg || 0) });
  }
  try {
    await api("PUT", `/api/farmers/${encodeURIComponent(state.farmerId)}/shipping`, { currency: "IDR", rates });
    out.textContent = t("saved");
    await loadRates();
  } catch (err) {
    out.textContent = errorText(err);
  }
}

function drawChart() {
  const box = $("#chart");
  const stamp = new Intl.DateTimeFormat(locale(), { dateStyle: "short", timeStyle: "short" });
  const clockFmt = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" });
  const compact = new Intl.NumberFormat(locale(), { notation: "compact" });
  const data = [state.points.map((p) => p[0]), state.points.map((p) => p[1])];
  const width = Math.max(280, box.clientWidth || 320);
  if (!window.uPlot) return;
  if (state.chart && state.chart.width !== width) { state.chart.destroy(); state.chart = null; }
  if (!state.chart) {
    state.chart = new window.uPlot({
      width, height: 220,
      // Times and numbers in the page's language (id-ID: "21.10", "6/12/26"), not uPlot's US ones.
      series: [{ label: t("time"), value: (u, ts) => (ts == null ? "–" : stamp.format(new Date(ts * 1000))) },
        { label: t("gross"), stroke: "#2f6b3a", fill: "#2f6b3a22", width: 2, points: { size: 7 },
          value: (u, v) => (v == null ? "–" : money(v, state.currency)) }],
      axes: [{ values: (u, splits) => splits.map((ts) => clockFmt.format(new Date(ts * 1000))) },
        { size: 80, values: (u, vals) => vals.map((v) => compact.format(v)) }],
      // One point (the page just opened) still gets a readable window of the last minutes.
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 300, max + 30] : [min, max]) },
        y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
    }, data, box);
  } else {
    state.chart.setData(data);
  }
}

let tablesTimer = null;
function refreshTables() {
  clearTimeout(tablesTimer);
  tablesTimer = setTimeout(async () => {
    try {
      const fresh = await api("GET", `/api/farmers/${encodeURIComponent(state.farmerId)}/totals`);
      state.tables = { by_product: fresh.by_product, by_session: fresh.by_session };
      render();
    } catch { /* the next sale tries again */ }
  }, 700);
}

function onFrame(frame) {
  if (frame.type === "subscribed" && frame.snapshot) {
    state.totals = frame.snapshot.totals || frame.snapshot;
    seriesFrom(state.totals);
    addPoint(state.totals);
  } else if (frame.type === "ticker" && frame.totals) {
    state.totals = frame.totals;
    addPoint(state.totals);
    const kinds = new Set((frame.events || []).map((e) => e.type));
    // The live numbers fold each sale; the tables by product and session are read again
    // (a moment later, once for a burst), so they never lag the cards.
    if (kinds.has("order_paid") || kinds.has("refund")) refreshTables();
    if (kinds.has("shipment") || kinds.has("payout")) loadPayouts().catch(() => {});
  } else {
    return;
  }
  render();
}

// Which farmer this is: `?id=` (an admin looking at a farm), else the caller's own profile.
async function findFarmerId() {
  const q = new URLSearchParams(location.search).get("id");
  if (q) return q;
  try {
    return (await api("GET", "/api/me/farmer")).id;
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

async function load() {
  if (!requireLogin()) return;
  if (!auth.has("farmer")) { $("#denied").classList.remove("hidden"); return; }
  try {
    state.farmerId = await findFarmerId();
    if (!state.farmerId) { $("#denied").classList.remove("hidden"); return; }
    const [farmer, totals] = await Promise.all([
      api("GET", `/api/farmers/${encodeURIComponent(state.farmerId)}`),
      api("GET", `/api/farmers/${encodeURIComponent(state.farmerId)}/totals`),
    ]);
    $("#farmer-name").textContent = `: ${farmer.name} (${farmer.region})`;
    state.totals = totals;
    state.tables = { by_product: totals.by_product, by_session: totals.by_session };
    seriesFrom(totals);
    addPoint(totals);
  } catch (err) {
    $("#denied").textContent = errorText(err);
    $("#denied").classList.remove("hidden");
    return;
  }
  $("#dash").classList.remove("hidden");
  render();
  loadPayouts().catch((err) => { $("#next-payout").textContent = errorText(err); });
  loadRates().catch((err) => { $("#rates-form .form-error").textContent = errorText(err); });
  const live = new Live({ onState: connectionBadge($("#conn"), t) });
  window.panenLive = live;
  live.subscribe(`farmer:${state.farmerId}`, onFrame);
  addEventListener("resize", () => drawChart());
}

// --- payouts ------------------------------------------------------------------------------

async function loadPayouts() {
  const p = await api("GET", `/api/farmers/${encodeURIComponent(state.farmerId)}/payouts`);
  state.payouts = p;
  renderPayouts();
}

function renderPayouts() {
  const p = state.payouts;
  if (!p) return;
  $("#next-payout").textContent = `${t("next_payout_at")}: ${when(p.next_run_at)} (${t("min_payout")} ${money(p.minimum, state.currency)})`;
  $("#balances").replaceChildren(...p.balances.map((b) => el("tr", {},
    el("td", { text: b.currency }),
    el("td", { class: "n", text: money(b.owed, b.currency) }),
    el("td", { class: "n", text: money(b.awaiting_delivery, b.currency) }),
    el("td", { class: "n", text: money(b.available, b.currency) }))));
  $("#account-now").textContent = p.account
    ? `${p.account.bank.toUpperCase()} ${p.account.account_number} · ${p.account.holder_name}`
    : t("no_account");
  $("#payout-list").replaceChildren(...p.payouts.map((x) => el("tr", {},
    el("td", { text: when(x.created_at) }),
    el("td", { class: "n", text: money(x.amount, x.currency) }),
    el("td", { text: t(`st_${x.status}`) }),
    el("td", { text: `${x.bank.toUpperCase()} ${x.account_number}` }))));
}

async function saveAccount(e) {
  e.preventDefault();
  const out = $("#account-form .form-error");
  out.textContent = "";
  try {
    await api("POST", `/api/farmers/${encodeURIComponent(state.farmerId)}/payout-account`, {
      bank: $("#acc-bank").value, account_number: $("#acc-number").value.trim(), holder_name: $("#acc-holder").value.trim(),
    });
    $("#acc-number").value = "";
    out.textContent = t("saved");
    await loadPayouts();
  } catch (err) {
    out.textContent = errorText(err);
  }
}

$("#account-form").addEventListener("submit", saveAccount);
$("#rates-form").addEventListener("submit", saveRates);
onLangChange(() => {
  if (state.chart) { state.chart.destroy(); state.chart = null; }  // its labels, anew
  render(); renderPayouts();
});
boot("farmer").then(load);
