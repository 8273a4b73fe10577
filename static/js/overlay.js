// The stream overlay: a page meant to be an OBS browser source (1920x1080, transparent) that
// shows a room's donation and order alerts one at a time, the campaign's goal in units, and
// the flash deal's countdown. `?show=alerts,goal,deal` picks what it shows; `?lang=en`.
import { $, el, idFromPath, money, num } from "./common.js";
import { clock, describe, who } from "./events.js";
import { setLang, t } from "./i18n.js";
import { Live } from "./live.js";

const sessionId = idFromPath("/overlay/sessions/");
const params = new URLSearchParams(location.search);
const show = new Set((params.get("show") || "alerts,goal,deal").split(","));
if (params.get("lang")) setLang(params.get("lang"));
const ALERT_MS = Number(params.get("alert_ms")) || 6000;

const state = { totals: {}, deal: null, currency: "IDR", listings: new Map(), queue: [], showing: false };
const ctx = {
  get currency() { return state.currency; },
  productName: (id) => { const l = state.listings.get(id); return l && l.product ? l.product.name : null; },
};

function renderGoal() {
  const goal = state.totals.goal;
  $("#o-goal").classList.toggle("hidden", !show.has("goal") || !goal);
  if (!goal) return;
  const funded = Math.min(goal.funded_units || 0, goal.goal_units || 0);
  $("#o-goal-text").textContent = t("funded", { n: num(goal.funded_units || 0), goal: num(goal.goal_units), unit: goal.unit_name });
  $("#o-goal-bar").style.width = `${goal.goal_units ? (100 * funded / goal.goal_units).toFixed(1) : 0}%`;
}

function renderDeal() {
  const d = state.deal;
  const now = Date.now();
  const running = d && now < Date.parse(d.ends_at) && state.totals.status !== "ended";
  $("#o-deal").classList.toggle("hidden", !show.has("deal") || !running);
  if (!running) return;
  const start = Date.parse(d.starts_at), end = Date.parse(d.ends_at);
  $("#o-deal-label").textContent = now < start ? t("deal_starts") : t("deal_ends");
  $("#o-deal-countdown").textContent = clock((now < start ? start : end) - now);
  const left = typeof d.remaining === "number" ? d.remaining : d.stock;
  $("#o-deal-price").textContent = left > 0 ? money(d.price, state.currency) : t("sold_out");
  const name = ctx.productName(d.listing_id);
  $("#o-deal-product").textContent = name ? `${t("deal")}: ${name}` : t("deal");
}

// Alerts wait their turn: a burst of gifts is each shown, never a blur.
function alertFor(ev) {
  if (ev.type === "donation") {
    return { title: t("ev_donation", { who: who(ev), amount: money(ev.amount, ev.currency || state.currency) }), message: ev.message || "" };
  }
  if (ev.type === "donation_message") return { title: who(ev), message: ev.message || "" };
  if (ev.type === "order_paid" || ev.type === "milestone" || ev.type === "energy") {
    return { title: describe(ev, ctx), message: "" };
  }
  return null;
}

function next() {
  const item = state.queue.shift();
  if (!item) { state.showing = false; $("#o-alert").classList.add("hidden"); return; }
  state.showing = true;
  $("#o-alert-title").textContent = item.title;
  $("#o-alert-message").textContent = item.message;
  const box = $("#o-alert");
  box.classList.add("hidden");
  void box.offsetWidth;  // restart the entrance animation
  box.classList.remove("hidden");
  setTimeout(next, ALERT_MS);
}

function onFrame(frame) {
  if (frame.type === "subscribed" && frame.snapshot) {
    state.totals = frame.snapshot.totals || {};
  } else if (frame.type === "ticker") {
    if (frame.totals) state.totals = frame.totals;
    for (const ev of frame.events || []) {
      if (ev.type === "pinned" && ev.listing && ev.listing.id) state.listings.set(ev.listing.id, ev.listing);
      const item = show.has("alerts") ? alertFor(ev) : null;
      if (item && item.title) state.queue.push(item);
    }
    if (!state.showing) next();
  } else {
    return;
  }
  state.currency = state.totals.currency || state.currency;
  if (state.totals.flash_deal !== undefined) state.deal = state.totals.flash_deal;
  const pin = state.totals.pinned;
  if (pin && pin.id) state.listings.set(pin.id, pin);
  renderGoal();
  renderDeal();
}

async function load() {
  try {
    const res = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}`);
    if (res.ok) {
      const s = await res.json();
      state.currency = s.currency;
      for (const l of s.listings || []) state.listings.set(l.id, l);
    }
  } catch { /* the overlay still shows what the socket says */ }
  new Live({}).subscribe(`session:${sessionId}`, onFrame);
  setInterval(renderDeal, 250);
  document.body.append(el("span", { id: "o-ready", class: "hidden" }));
}

load();
