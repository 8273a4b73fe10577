// The viewer's room: stream, pinned product, flash deal, buy, donate, chat, likes, ticker.
import {
  $, api, auth, boot, codeText, el, errorText, idFromPath, money, newKey, num, onLangChange, parseAmount, pct,
  requireLogin, safeUrl, t, toast, when,
} from "./common.js";
import { known } from "./i18n.js";
import { askAddress } from "./address.js";
import { clock, describe, mountStream } from "./events.js";
import { connectionBadge, Live } from "./live.js";
import { goalBar } from "./totals.js";

const sessionId = idFromPath("/sessions/");
const topic = `session:${sessionId}`;
const state = {
  session: null, listings: new Map(), totals: {}, deal: null, pinned: null,
  feed: [], chat: [], likesPending: 0, qty: new Map(), productsKey: "",
};
let live = null;

const currency = () => (state.session ? state.session.currency : "IDR");
// The session's status as the room last heard it (a host ending it reaches every viewer).
const status = () => state.totals.status || (state.session ? state.session.status : "");
const ended = () => status() === "ended";
const ctx = {
  get currency() { return currency(); },
  productName: (id) => { const l = state.listings.get(id); return l && l.product ? l.product.name : null; },
};

// --- rendering --------------------------------------------------------------------------

function remaining(listing) {
  const t2 = state.totals;
  const pin = t2.pinned;
  if (pin && (pin.id ?? pin.listing_id) === listing.id && typeof pin.remaining === "number") return pin.remaining;
  if (t2.stock && typeof t2.stock[listing.id] === "number") return t2.stock[listing.id];
  if (typeof listing.remaining === "number") return listing.remaining;
  const sold = t2.units_sold && typeof t2.units_sold === "object" ? t2.units_sold[listing.id] || 0 : 0;
  return Math.max(0, listing.stock - sold);
}

// What a buyer can buy of a listing now: while its flash deal runs, the deal's own stock
// (the deal is all there is to buy then), else the listing's.
function leftFor(listing) {
  const deal = activeDeal(listing.id);
  if (!deal) return remaining(listing);
  return typeof deal.remaining === "number" ? deal.remaining : deal.stock;
}

function pledgeText(listing) {
  if (listing.pledge_bps) return t("pledge_bps", { pct: pct(listing.pledge_bps) });
  if (listing.pledge_per_unit) return t("pledge_unit", { amount: money(listing.pledge_per_unit, currency()) });
  return null;
}

function activeDeal(listingId) {
  const d = state.deal;
  if (!d || d.listing_id !== listingId) return null;
  const now = Date.now();
  return now >= Date.parse(d.starts_at) && now < Date.parse(d.ends_at) ? d : null;
}

function productCard(listing, featured) {
  const left = leftFor(listing);
  const deal = activeDeal(listing.id);
  const qty = el("input", { type: "number", class: "qty", min: 1, max: listing.max_per_buyer || 99,
    value: state.qty.get(listing.id) || 1, "aria-label": "qty",
    oninput: (e) => state.qty.set(listing.id, Number(e.target.value) || 1) });
  const over = ended();
  const buy = el("button", { type: "button", class: "buy", text: over ? t("session_over") : left > 0 ? t("buy") : t("sold_out"),
    disabled: over || left <= 0, onclick: () => buyListing(listing, Number(qty.value) || 1, buy) });
  const price = deal
    ? el("span", {}, el("span", { class: "price deal-price", text: money(deal.price, currency()) }), " ", el("span", { class: "strike", text: money(listing.price, currency()) }))
    : el("span", { class: "price", text: money(listing.price, currency()) });
  const p = listing.product || {};
  return el("div", { class: featured ? "product featured" : "product card", dataset: { listingId: listing.id } },
    featured ? el("div", { class: "muted", text: `★ ${t("pinned")}` }) : null,
    el("div", { class: "row" },
      p.image_url ? el("img", { src: p.image_url, alt: "", width: 56, height: 56, style: "border-radius:.4rem;object-fit:cover" }) : null,
      el("div", { class: "grow" }, el("strong", { class: "product-name", text: p.name || listing.product_id }),
        el("div", { class: "muted", text: [p.unit, p.origin].filter(Boolean).join(" · ") }))),
    el("div", { class: "row" }, price, el("span", { class: "muted grow stock", text: t("stock_left", { n: num(left) }) })),
    pledgeText(listing) ? el("div", { class: "muted pledge", text: `♥ ${pledgeText(listing)}` }) : null,
    el("div", { class: "row" }, over ? null : qty, buy));
}

function renderProducts() {
  const pinnedId = state.pinned || (state.session && state.session.pinned_listing_id);
  // Ticker frames arrive several times a second; redraw the cards only when what they show
  // changed, so a quantity being typed or a button being pressed is never swept away.
  const key = JSON.stringify([pinnedId, state.dealRunning, status(), [...state.listings.values()].map((l) => [l.id, l.price, leftFor(l)])]);
  if (key === state.productsKey) return;
  state.productsKey = key;
  const pinned = pinnedId ? state.listings.get(pinnedId) : null;
  $("#pinned").classList.toggle("hidden", !pinned);
  $("#pinned").replaceChildren(...(pinned ? [productCard(pinned, true)] : []));
  const others = [...state.listings.values()].filter((l) => l.id !== pinnedId);
  $("#listings").replaceChildren(...others.map((l) => productCard(l, false)));
  $("#listings").closest("section").classList.toggle("hidden", others.length === 0);
}

function renderTotals() {
  const tot = state.totals || {};
  const charity = tot.charity || {};
  $("#charity-total").textContent = money(charity.total || 0, currency());
  const goal = tot.goal || (state.session && state.session.campaign
    ? { ...state.session.campaign, funded_units: 0 } : null);
  $("#goal").replaceChildren(...(goal ? [goalBar(goal)] : []));
  $("#matched").textContent = charity.matched ? `${t("matched")}: ${money(charity.matched, currency())}` : "";
  const energy = tot.energy || {};
  $("#energy").textContent = !energy.amount ? ""
    : energy.units ? `⚡ ${t("energy_units", { n: num(energy.units), unit: energy.unit_name || "" })}`
      : `⚡ ${t("energy_amount", { amount: money(energy.amount, currency()) })}`;
  $("#viewers").textContent = num(tot.viewers || 0);
  const label = $("#viewers-label");  // data-i18n too, so a language switch keeps the number
  label.dataset.i18n = tot.viewers === 1 ? "viewer_one" : "viewers";
  label.textContent = t(label.dataset.i18n);
  $("#like-count").textContent = num((tot.likes || 0) + state.likesPending);
  const donors = Array.isArray(tot.top_donors) ? tot.top_donors : [];
  $("#top-donors").replaceChildren(...donors.map((d) =>
    el("li", {}, el("span", { text: d.display_name || d.name || t("anonymous") }), " · ", el("strong", { text: money(d.amount ?? d.total, currency()) }))));
  renderProducts();
}

function renderFeed() {
  $("#ticker").replaceChildren(...state.feed.map((e) => el("li", { class: `ev ev-${e.type}`, text: e.text })));
}

function chatLine(m) {
  return el("li", { class: "chat-line", dataset: { messageId: m.id || "" } },
    el("strong", { text: `${m.display_name || m.name || m.user || t("someone")}: ` }), el("span", { class: "chat-text", text: m.text }));
}

function renderChat() {
  const box = $("#chat");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
  box.replaceChildren(...state.chat.map(chatLine));
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderDeal() {
  const d = state.deal;
  const box = $("#deal");
  if (!d || ended()) { box.classList.add("hidden"); return; }
  const now = Date.now(), start = Date.parse(d.starts_at), end = Date.parse(d.ends_at);
  box.classList.remove("hidden");
  const listing = state.listings.get(d.listing_id);
  $("#deal-product").textContent = listing && listing.product ? listing.product.name : "";
  const dealLeft = typeof d.remaining === "number" ? d.remaining : d.stock;
  $("#deal-price").textContent = dealLeft > 0 ? money(d.price, currency()) : t("sold_out");
  $("#deal-stock").textContent = dealLeft > 0 ? t("stock_left", { n: num(dealLeft) }) : "";
  if (now < start) { $("#deal-label").textContent = t("deal_starts"); $("#deal-countdown").textContent = clock(start - now); }
  else if (now < end) { $("#deal-label").textContent = t("deal_ends"); $("#deal-countdown").textContent = clock(end - now); }
  else { $("#deal-label").textContent = ""; $("#deal-countdown").textContent = t("deal_over"); }
  // The deal price replaces the listing's only while the deal runs.
  const running = now >= start && now < end;
  if (running !== state.dealRunning) { state.dealRunning = running; renderProducts(); }
}

// --- live frames ------------------------------------------------------------------------

function pushMore(kind, n) {
  if (!Number.isInteger(n) || n <= 0) return;
  const key = known(`ev_more_${kind}`) ? `ev_more_${kind}` : "ev_more";
  state.feed.unshift({ type: "more", text: t(key, { n: num(n) }), ev: { type: "more" } });
  state.feed.length = Math.min(state.feed.length, 50);
}

function pushEvent(ev) {
  if (ev.type === "message_hidden") {  // the host hid a donor's message: the gift stays
    state.feed = state.feed
      .filter((e) => !(e.ev.type === "donation_message" && e.ev.donation_id === ev.donation_id))
      .map((e) => (e.ev.donation_id === ev.donation_id && e.ev.message
        ? { ...e, ev: { ...e.ev, message: undefined }, text: describe({ ...e.ev, message: undefined }, ctx) }
        : e));
    return;
  }
  const text = describe(ev, ctx);
  if (text) {
    state.feed.unshift({ type: ev.type, text, ev });
    state.feed.length = Math.min(state.feed.length, 50);
  }
  if (ev.type === "pinned") {
    if (ev.listing && ev.listing.id) { mergeListing(ev.listing); state.pinned = ev.listing.id; }
    else if (ev.listing_id) state.pinned = ev.listing_id;
  }
  if (ev.type === "flash_deal") state.deal = ev.deal || ev;
  if (ev.type === "chat_deleted" || ev.type === "moderated") {
    const target = ev.message_id || ev.target;
    state.chat = state.chat.filter((m) => m.id !== target && m.user_id !== ev.muted_user_id);
    renderChat();
  }
}

// The room's totals carry the pinned listing (with its remaining stock) and the flash deal.
function takeTotals(totals) {
  const was = status();
  state.totals = totals || {};
  if (status() !== was) renderStatus();
  renderRules();
  const pin = state.totals.pinned;
  if (pin && typeof pin === "object") {
    const id = pin.id ?? pin.listing_id;
    state.pinned = id;
    if (pin.id) mergeListing(pin);
  }
  if (state.totals.flash_deal !== undefined) state.deal = state.totals.flash_deal;
}

// The host's chat rules the room shows: a pinned message over the chat, and slow mode.
// Ticker frames come several times a second: redraw only when the rules (or the language)
// changed.
let rulesShown = "";

function renderRules(force = false) {
  const source = "pinned_message" in state.totals ? state.totals : state.session || {};
  const pinned = source.pinned_message;
  const key = JSON.stringify([pinned, source.slow_mode_s]);
  if (key === rulesShown && !force) return;
  rulesShown = key;
  const box = $("#pinned-message");
  box.classList.toggle("hidden", !pinned);
  box.replaceChildren(...(pinned ? [el("span", { class: "k", text: `📌 ${t("pinned_note")}` }), el("span", { text: pinned.text })] : []));
  const slow = source.slow_mode_s || 0;
  $("#slow-mode").classList.toggle("hidden", !slow);
  $("#slow-mode").textContent = slow ? t("slow_mode_note", { n: num(slow) }) : "";
}

function applySnapshot(snap) {
  if (!snap) return;
  takeTotals(snap.totals || snap);
  const chat = snap.chat || snap.recent_chat;
  if (Array.isArray(chat)) { state.chat = chat.slice(-100); renderChat(); }
  const events = snap.events || snap.recent_events;
  if (Array.isArray(events)) {
    state.feed = [];
    for (const ev of events) pushEvent(ev);
    takeTotals(snap.totals || snap);  // the current pin and deal, not the replay's last
    renderFeed();
  }
  if (Array.isArray(snap.listings)) for (const l of snap.listings) mergeListing(l);
}

function mergeListing(l) {
  const old = state.listings.get(l.id);
  state.listings.set(l.id, old ? { ...old, ...l, product: l.product || old.product } : l);
}

function onFrame(frame) {
  switch (frame.type) {
    case "disconnected":
      $("#charity-card").classList.add("stale");  // a total we cannot vouch for is dimmed
      return;
    case "subscribed":
      // Recovered: the missed ticker frames follow with the current totals. Otherwise the
      // snapshot is the truth and replaces whatever this page showed.
      applySnapshot(frame.snapshot);
      $("#charity-card").classList.remove("stale");
      renderTotals(); renderDeal();
      return;
    case "ticker":
      if (frame.totals) takeTotals(frame.totals);
      // A busy frame lists the newest few of each kind and counts the rest (`more`).
      for (const [kind, n] of Object.entries(frame.more || {})) pushMore(kind, n);
      for (const ev of frame.events || []) pushEvent(ev);
      renderFeed(); renderTotals(); renderDeal();
      return;
    case "chat":
      if (frame.message) {
        if (frame.message.deleted) state.chat = state.chat.filter((m) => m.id !== frame.message.id);
        else state.chat.push(frame.message);
        state.chat = state.chat.slice(-100);
        renderChat();
      }
      return;
    case "chat_deleted":
      state.chat = state.chat.filter((m) => m.id !== frame.message_id);
      renderChat();
      return;
    case "error":
      toast(codeText(frame.code, frame.message, frame.details || {}), "error");
      return;
    default:
  }
}

// --- actions ----------------------------------------------------------------------------

async function buyListing(listing, quantity, button) {
  if (!requireLogin()) return;
  button.disabled = true;
  const body = { listing_id: listing.id, quantity };
  try {
    // What it will cost, shipping included, and where it goes: asked before anything is
    // bought (a first purchase asks for an address first).
    const quote = await quoteFor(listing, quantity);
    if (!quote || !await confirmOrder(listing, quantity, quote)) return;
    const res = await api("POST", "/api/orders", { ...body, address_id: quote.address_id }, { idempotencyKey: newKey() });
    const order = res.order || res;
    const due = order.payment && order.payment.amount ? order.payment.amount : order.total;
    if (order.payment && order.payment.id && await payFor(order.payment, due, order.shipping_fee)) {
      toast(`${t("paid_thanks")} ${money(due, currency())}${shippingNote(order.shipping_fee)}`);
    }
  } catch (err) {
    toast(err.code === "sold_out" ? t("sold_out") : errorText(err), "error");
  } finally {
    button.disabled = leftFor(listing) <= 0 || ended();
    state.productsKey = "";
    renderProducts();
  }
}

async function quoteFor(listing, quantity) {
  const url = `/api/shipping/quote?listing_id=${encodeURIComponent(listing.id)}&quantity=${quantity}`;
  try {
    return await api("GET", url);
  } catch (err) {
    if (err.code !== "address_required") throw err;
    if (!await askAddress()) return null;  // dismissed: nothing is bought
    return api("GET", url);
  }
}

// The sheet before an order: quantity, price, shipping, what to pay, the pledge, the address.
function confirmOrder(listing, quantity, quote) {
  return new Promise((resolve) => {
    const dialog = $("#confirm-dialog");
    const cur = quote.currency || currency();
    const p = listing.product || {};
    $("#confirm-product").textContent = [p.name, p.unit].filter(Boolean).join(" · ");
    $("#confirm-qty").textContent = `${num(quantity)} × ${money(quote.total / quantity, cur)}`;
    $("#confirm-goods").textContent = money(quote.total, cur);
    $("#confirm-shipping").textContent = quote.shippable
      ? (quote.shipping_fee ? money(quote.shipping_fee, cur) : t("free_shipping")) : t("err_not_shippable");
    $("#confirm-total").textContent = money(quote.amount, cur);
    $("#confirm-pledge").textContent = pledgeText(listing) ? `♥ ${pledgeText(listing)}` : "";
    $("#confirm-address").textContent = quote.zone ? `${t("ship_to")}: ${quote.address_label || ""}` : "";
    $("#confirm-buy").disabled = !quote.shippable;
    $("#confirm-form .form-error").textContent = "";
    const done = (ok) => { dialog.close(); resolve(ok); };
    $("#confirm-cancel").onclick = () => done(false);
    $("#confirm-form").onsubmit = (e) => { e.preventDefault(); done(true); };
    dialog.addEventListener("cancel", () => resolve(false), { once: true });
    dialog.showModal();
  });
}

function openDonate() {
  if (!requireLogin()) return;
  const presets = currency() === "IDR" ? [10000, 25000, 50000, 150000] : [500, 1000, 2500, 5000];
  $("#donate-presets").replaceChildren(...presets.map((a) => el("button", { type: "button", class: "secondary small",
    text: money(a, currency()), onclick: () => { $("#donate-amount").value = String(a / 10 ** (currency() === "IDR" || currency() === "JPY" ? 0 : 2)); } })));
  $("#donate-form .form-error").textContent = "";
  $("#donate-dialog").showModal();
}

async function submitDonation(e) {
  e.preventDefault();
  const out = $("#donate-form .form-error");
  const amount = parseAmount($("#donate-amount").value, currency());
  if (!amount) { out.textContent = t("amount_hint", { example: money(50000, currency()) }); return; }
  const body = { charity_id: state.session.charity_id, session_id: sessionId, amount, visibility: $("#donate-visibility").value };
  const message = $("#donate-message").value.trim();
  if (message) body.message = message;
  $("#donate-submit").disabled = true;
  try {
    const res = await api("POST", "/api/donations", body, { idempotencyKey: newKey() });
    $("#donate-dialog").close();
    $("#donate-form").reset();
    if (res.payment && res.payment.id && await payFor(res.payment, amount)) toast(t("donated_thanks"));
    const id = res.donation && res.donation.id;
    if (id) {
      const mine = JSON.parse(localStorage.getItem("panen.donations") || "[]");
      localStorage.setItem("panen.donations", JSON.stringify([id, ...mine.filter((x) => x !== id)].slice(0, 50)));
      // Its receipt, one tap away: checked in the browser against the charity's log.
      const link = $("#last-receipt");
      link.href = `/verify?donation=${encodeURIComponent(id)}`;
      link.classList.remove("hidden");
    }
  } catch (err) {
    out.textContent = errorText(err);
  } finally {
    $("#donate-submit").disabled = false;
  }
}

// --- paying --------------------------------------------------------------------------------

let offeredMethods = null;
async function methods() {
  if (!offeredMethods) offeredMethods = (await api("GET", "/api/payments/methods")).methods;
  return offeredMethods;
}

// Pays a payment: with the sandbox alone (development), straight away; otherwise the payer
// chooses a method and goes to the gateway's page, which brings them back here. Resolves
// true when it was paid on this page.
function shippingNote(fee) {
  return fee ? ` (${t("incl_shipping", { fee: money(fee, currency()) })})` : "";
}

async function payFor(payment, amount, shippingFee = 0) {
  const offered = await methods();
  if (offered.length === 1 && offered[0].method === "sandbox") {
    await api("POST", `/api/payments/${encodeURIComponent(payment.id)}/sandbox/approve`, {});
    return true;
  }
  return new Promise((resolve) => {
    const dialog = $("#pay-dialog");
    const out = $("#pay-form .form-error");
    out.textContent = "";
    $("#pay-amount").textContent = money(amount, currency()) + shippingNote(shippingFee);
    $("#pay-methods").replaceChildren(...offered.map((m) => el("button", {
      type: "button", class: "secondary method", "data-method": m.method, text: t(`method_${m.method}`),
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          if (m.method === "sandbox") {
            await api("POST", `/api/payments/${encodeURIComponent(payment.id)}/checkout`, { method: "sandbox" });
            await api("POST", `/api/payments/${encodeURIComponent(payment.id)}/sandbox/approve`, {});
            dialog.close();
            resolve(true);
            return;
          }
          const res = await api("POST", `/api/payments/${encodeURIComponent(payment.id)}/checkout`, { method: m.method });
          const url = safeUrl(res.checkout.redirect_url);
          if (url) window.location.assign(url);  // the gateway's page; it returns the payer here
        } catch (err) {
          out.textContent = errorText(err);
          e.currentTarget.disabled = false;
        }
      } })));
    $("#pay-cancel").onclick = () => { dialog.close(); resolve(false); };
    dialog.showModal();
  });
}

let likeTimer = null;
function like() {
  if (!requireLogin()) return;
  state.likesPending += 1;
  $("#like-count").textContent = num((state.totals.likes || 0) + state.likesPending);
  // Taps are batched: one frame carries every tap of the last half second.
  if (!likeTimer) likeTimer = setTimeout(flushLikes, 500);
}

function flushLikes() {
  likeTimer = null;
  const count = Math.min(state.likesPending, 50);
  if (!count || !live.isOpen()) return;
  state.likesPending -= count;
  live.send({ type: "like", topic, count });
  if (state.likesPending) likeTimer = setTimeout(flushLikes, 500);
}

async function sendChat(e) {
  e.preventDefault();
  if (!requireLogin()) return;
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text) return;
  try {
    await live.send({ type: "chat", topic, text }, { expectReply: true });
    input.value = "";
  } catch (err) {
    toast(err.code ? codeText(err.code, err.message, err.details || {}) : errorText(err), "error");
  }
}

// --- energy points: earned live on the `me` topic, redeemed into a sponsor pool --------------

const points = { balance: 0, redeemable: 0, lots: [], pools: [] };

// How points are earned, from this deployment's own rules (GET /api/points/rules).
let earning = null;

function renderEarning() {
  const r = earning;
  if (!r) return;
  const cur = state.session ? state.session.currency : "IDR";
  const lines = [t("rule_watch", { n: num(r.watch_points_per_minute), min: num(Math.max(1, Math.round(r.watch_minute_s / 60))),
    max: num(r.watch_max_minutes_per_session) }),
  t("rule_likes", { n: num(r.likes_per_point), max: num(r.like_max_points_per_session) })];
  if (r.spend_minor_per_point[cur]) lines.push(t("rule_spend", { amount: money(r.spend_minor_per_point[cur], cur) }));
  if (r.donate_minor_per_point[cur]) lines.push(t("rule_donate", { amount: money(r.donate_minor_per_point[cur], cur) }));
  lines.push(t("rule_ttl", { days: num(Math.round(r.points_ttl_s / 86400)) }));
  $("#points-rules").replaceChildren(...lines.map((text) => el("li", { text })));
}

async function loadEarning() {
  try { earning = await api("GET", "/api/points/rules"); renderEarning(); } catch { /* the rest of the card works */ }
}

function renderPoints() {
  $("#points-card").classList.toggle("hidden", !auth.token);
  $("#points-balance").textContent = num(points.balance);
  const next = points.lots.find((l) => !l.expired);
  $("#points-expiry").textContent = next
    ? t("points_expire", { n: num(next.remaining), when: when(next.expires_at) }) : "";
  renderEarning();
  const select = $("#pool-select");
  const chosen = select.value;
  select.replaceChildren(...(points.pools.length ? points.pools.map((p) => el("option", { value: p.id,
    text: `${p.sponsor_name} · ${num(p.rate.points)} = ${money(p.rate.amount, p.currency)}` }))
    : [el("option", { value: "", text: t("no_pool") })]));
  if (chosen) select.value = chosen;
  $("#redeem-btn").disabled = !(points.redeemable > 0 && points.pools.length);
}

async function loadPoints() {
  if (!auth.token) { renderPoints(); return; }
  try {
    const [mine, pools] = await Promise.all([
      api("GET", "/api/me/points"),
      api("GET", `/api/pools?session_id=${encodeURIComponent(sessionId)}`),
    ]);
    Object.assign(points, { balance: mine.balance, redeemable: mine.redeemable, lots: mine.lots });
    points.pools = pools.pools.filter((p) => p.remaining > 0);
  } catch (err) { /* the room works without points */ }
  renderPoints();
}

function onMe(frame) {
  if (frame.type !== "ticker") return;
  const changed = (frame.events || []).filter((e) => e.type === "points");
  if (!changed.length) return;
  const last = changed[changed.length - 1];
  points.balance = last.balance; points.redeemable = Math.max(0, last.redeemable);
  renderPoints();
}

async function redeemPoints() {
  const pool = points.pools.find((p) => p.id === $("#pool-select").value) || points.pools[0];
  if (!pool || points.redeemable <= 0) return;
  // As many points as the pool still takes, in whole steps of its rate.
  const most = Math.floor(pool.remaining * pool.rate.points / pool.rate.amount);
  const want = Math.min(points.redeemable, most);
  $("#redeem-btn").disabled = true;
  try {
    const res = await api("POST", "/api/points/redeem", { pool_id: pool.id, points: want, session_id: sessionId },
      { idempotencyKey: newKey() });
    toast(t("redeemed", { points: num(res.redemption.points), amount: money(res.redemption.amount, res.redemption.currency) }));
  } catch (err) {
    toast(errorText(err), "error");
  }
  await loadPoints();
}

// --- start ------------------------------------------------------------------------------

async function load() {
  try {
    state.session = await api("GET", `/api/sessions/${encodeURIComponent(sessionId)}`);
  } catch (err) {
    // No such room: say so, and show none of a room's controls.
    $("#title").textContent = err.status === 404 ? t("not_found") : errorText(err);
    for (const node of document.querySelectorAll("main > :not(.row)")) node.classList.add("hidden");
    $("#status").classList.add("hidden");
    $("#conn").classList.add("hidden");
    $("main").append(el("p", { class: "card", id: "no-room" }, el("a", { href: "/", text: t("home") })));
    return false;
  }
  const s = state.session;
  document.title = `Panen · ${s.title}`;
  $("#title").textContent = s.title;
  for (const l of s.listings || []) mergeListing(l);
  if (s.totals) takeTotals(s.totals);
  if (s.flash_deal || s.deal) state.deal = s.flash_deal || s.deal;
  mountStream($("#stream"), s.stream_url, el);
  renderStatic();
  return true;
}

// The badge, and what an ended session no longer offers (buying, giving, liking).
function renderStatus() {
  const now = status();
  $("#status").className = `badge ${now}`;
  $("#status").textContent = now ? t(`session_${now}`) : "";
  const over = ended();
  for (const id of ["#donate-btn", "#like-btn"]) $(id).disabled = over;
  $("#ended-note").classList.toggle("hidden", !over);
  state.productsKey = "";
  renderProducts();
  renderDeal();
}

function renderStatic() {
  const s = state.session;
  if (!s) return;
  state.productsKey = "";  // the language may have changed: redraw the cards
  renderStatus();
  $("#charity-line").replaceChildren(...(s.charity ? [t("for_charity", { name: "" }).trim(), " ",
    el("a", { href: `/charities/${encodeURIComponent(s.charity.id)}`, text: s.charity.name })] : []),
  ...(s.campaign ? [" · ", el("a", { id: "campaign-link", href: `/campaigns/${encodeURIComponent(s.campaign.id)}`, text: s.campaign.title })] : []));
  renderTotals(); renderFeed(); renderChat(); renderDeal(); renderPoints(); renderRules(true);
}

$("#donate-btn").addEventListener("click", openDonate);
$("#donate-cancel").addEventListener("click", () => $("#donate-dialog").close());
$("#donate-form").addEventListener("submit", submitDonation);
$("#like-btn").addEventListener("click", like);
$("#redeem-btn").addEventListener("click", redeemPoints);
$("#chat-form").addEventListener("submit", sendChat);
onLangChange(renderStatic);
setInterval(renderDeal, 250);

boot("room").then(load).then((ok) => {
  if (!ok) return;
  live = new Live({ onState: connectionBadge($("#conn"), t), onError: (f) => toast(codeText(f.code, f.message, f.details || {}), "error") });
  window.panenLive = live;  // for the curious, and for tests that cut the connection
  live.subscribe(topic, onFrame);
  if (auth.token) live.subscribe("me", onMe);
  loadPoints();
  if (auth.token) loadEarning();
  // Back from a gateway's page: the payment is confirmed by its notification, which the
  // `me` topic reports as soon as it lands.
  if (new URLSearchParams(location.search).has("order")) toast(t("pay_returned"));
});
