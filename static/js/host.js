// The host console: go live, list and pin products, start flash deals, stats, read-outs with
// donation alerts, moderation (mute, ban, chat rules), new products with photos, and the
// summary after the show.
import {
  $, api, auth, boot, codeText, el, errorText, idFromPath, money, num, onLangChange, parseAmount, requireLogin, t, toast,
  present, upload, when,
} from "./common.js";
import { clock, describe, who } from "./events.js";
import { connectionBadge, Live } from "./live.js";
import { goalBar } from "./totals.js";

const sessionId = idFromPath("/host/sessions/");
const topic = `session:${sessionId}`;
const state = { session: null, listings: new Map(), totals: {}, feed: [], chat: [], deal: null, pinned: null };
const read = new Set();  // read on this page: the server has them marked too
let readout = [];
let live = null;

const cur = () => state.session.currency;
const ctx = {
  get currency() { return cur(); },
  productName: (id) => { const l = state.listings.get(id); return l && l.product ? l.product.name : null; },
};

function render() {
  const s = state.session;
  $("#title").textContent = s.title;
  $("#status").className = `badge ${s.status}`;
  $("#status").textContent = t(`session_${s.status}`);
  $("#go-live").disabled = s.status !== "scheduled";
  $("#end").disabled = s.status !== "live";
  const tot = state.totals || {};
  $("#s-viewers").textContent = num(tot.viewers || 0);
  $("#s-orders").textContent = num(tot.orders || 0);
  $("#s-gross").textContent = money(tot.gross || 0, cur());
  $("#s-charity").textContent = money((tot.charity && tot.charity.total) || 0, cur());
  $("#goal").replaceChildren(...(tot.goal ? [goalBar(tot.goal)] : []));
  const pinnedId = state.pinned || s.pinned_listing_id;
  const sold = (id) => (tot.units_sold && typeof tot.units_sold === "object" ? tot.units_sold[id] || 0 : 0);
  $("#listings").replaceChildren(...[...state.listings.values()].map((l) => el("tr", { dataset: { listingId: l.id } },
    el("td", {}, l.product && l.product.image_url ? el("img", { class: "thumb", src: l.product.image_url, alt: "" }) : null,
      el("strong", { text: l.product ? l.product.name : l.product_id }), pinnedId === l.id ? " ★" : ""),
    el("td", { class: "n", text: money(l.price, cur()) }),
    el("td", { class: "n", text: `${num(sold(l.id))} / ${num(l.stock)}` }),
    el("td", {}, el("button", { type: "button", class: "small secondary pin", text: t("pin"), disabled: pinnedId === l.id,
      onclick: () => pin(l.id) })))));
  const opts = [...state.listings.values()].map((l) => el("option", { value: l.id, text: l.product ? l.product.name : l.id }));
  const dl = $("#d-listing"), keep = dl.value;
  dl.replaceChildren(...opts);
  if (keep) dl.value = keep;
  $("#ticker").replaceChildren(...state.feed.map((e) => el("li", { text: e })));
  renderReadout();
  renderChat();
}

function renderReadout() {
  $("#readout").replaceChildren(...readout.filter((d) => !read.has(d.key)).map((d) => el("li", { class: "row" },
    el("span", { class: "grow" }, el("strong", { text: d.who }), ` (${money(d.amount, cur())}): `, el("span", { class: "readout-message", text: d.message })),
    el("button", { type: "button", class: "small secondary mark-read", text: t("mark_read"), onclick: async (e) => {
      e.currentTarget.disabled = true;
      try {  // read on the server, so every device of the host's (and a reload) agrees
        await api("POST", `/api/donations/${encodeURIComponent(d.key)}/message`, { action: "read" });
        read.add(d.key);
      } catch (err) { toast(errorText(err), "error"); }
      renderReadout();
    } }))));
}

// The queue as the server holds it: every paid gift's message not yet read, oldest first.
async function loadReadout() {
  try {
    const { messages } = await api("GET", `${path("/donation-messages")}?status=pending&limit=500`);
    const known = new Set(readout.map((d) => d.key));
    const queued = messages.filter((m) => !known.has(m.donation_id)).map((m) => ({
      key: m.donation_id, who: who(m), amount: m.amount, message: m.message }));
    readout = [...queued, ...readout];
  } catch (err) { toast(errorText(err), "error"); }
  renderReadout();
}

function renderChat() {
  $("#chat").replaceChildren(...state.chat.map((m) => el("li", { class: "row chat-line" },
    el("span", { class: "grow" }, el("strong", { text: `${m.display_name || m.name || t("someone")}: ` }), el("span", { class: "chat-text", text: m.text })),
    el("button", { type: "button", class: "small secondary", text: t("delete"), onclick: () => moderate("delete", m.id) }),
    m.user_id ? el("button", { type: "button", class: "small danger mute", text: t("mute"), onclick: () => mute(m) }) : null,
    m.user_id ? el("button", { type: "button", class: "small danger ban", text: t("ban"), onclick: () => ban(m) }) : null)));
  const muted = Object.entries(mutedUsers);
  $("#muted").replaceChildren(...(muted.length ? muted.map(([id, name]) => el("li", { class: "row" },
    el("span", { class: "grow", text: name }),
    el("button", { type: "button", class: "small secondary unmute", text: t("unmute"), onclick: () => unmute(id) })))
    : [el("li", { class: "muted", text: t("nobody_muted") })]));
}

// Muted viewers of this room, kept by this browser (the server keeps the mute itself).
const mutedKey = `panen.muted.${sessionId}`;
const mutedUsers = JSON.parse(localStorage.getItem(mutedKey) || "{}");
const keepMuted = () => localStorage.setItem(mutedKey, JSON.stringify(mutedUsers));

async function mute(m) {
  const name = m.display_name || m.name || t("someone");
  if (!window.confirm(t("confirm_mute", { name }))) return;  // one tap silences a person
  if (!await moderate("mute", m.user_id)) return;
  mutedUsers[m.user_id] = name;
  keepMuted();
  renderChat();
}

async function unmute(userId) {
  if (!await moderate("unmute", userId)) return;
  delete mutedUsers[userId];
  keepMuted();
  renderChat();
}

// The host's ban list: who may not chat in any of their rooms (kept by the server).
let bans = [];

function renderBans() {
  $("#bans").replaceChildren(...(bans.length ? bans.map((b) => el("li", { class: "row" },
    el("span", { class: "grow" }, el("strong", { text: b.display_name }), " ",
      el("span", { class: "muted", text: t("banned_from", { when: when(b.created_at) }) })),
    el("button", { type: "button", class: "small secondary unban", text: t("unban"), onclick: () => unban(b.user_id) })))
    : [el("li", { class: "muted", text: t("nobody_banned") })]));
}

async function loadBans() {
  await act(async () => { ({ bans } = await api("GET", "/api/me/bans")); });
  renderBans();
}

async function ban(m) {
  const name = m.display_name || m.name || t("someone");
  if (!window.confirm(t("confirm_ban", { name }))) return;  // silences them in every show
  if (await act(() => api("POST", "/api/me/bans", { user_id: m.user_id, session_id: sessionId }))) await loadBans();
}

async function unban(userId) {
  if (await act(() => api("DELETE", `/api/me/bans/${encodeURIComponent(userId)}`))) await loadBans();
}

// Chat rules: slow mode, the pinned message, blocked words (only the host sees those).
const SLOW_STEPS = [0, 5, 10, 30, 60, 120, 300];

function showRules(rules) {
  // The steps offered, and the rule as it is when set to another value (through the API):
  // saving the form then keeps it.
  const steps = [...new Set([...SLOW_STEPS, rules.slow_mode_s])].sort((a, b) => a - b);
  $("#r-slow").replaceChildren(...steps.map((n) => el("option", { value: String(n), text: n ? t("seconds", { n: num(n) }) : t("off") })));
  $("#r-slow").value = String(rules.slow_mode_s);
  $("#r-pinned").value = rules.pinned_message ? rules.pinned_message.text : "";
  $("#r-words").value = rules.blocked_words.join("\n");
}

async function loadRules() {
  await act(async () => showRules(await api("GET", path("/chat-rules"))));
}

async function saveRules(e) {
  e.preventDefault();
  const out = $("#rules-form .form-error");
  out.textContent = "";
  const pinned = $("#r-pinned").value.trim();
  const body = {
    slow_mode_s: Number($("#r-slow").value),
    pinned_message: pinned || null,
    blocked_words: $("#r-words").value.split("\n").map((w) => w.trim()).filter(Boolean),  // one a line
  };
  try {
    showRules(await api("PUT", path("/chat-rules"), body));
    toast(t("rules_saved"));
  } catch (err) { out.textContent = errorText(err); }
}

// Donation alerts: each gift shown large for a few seconds, one after another, so the host
// can thank the giver on air.
const alerts = [];
let alerting = false;

function alertNext() {
  const box = $("#alert");
  const next = alerts.shift();
  if (!next) { alerting = false; box.classList.add("hidden"); return; }
  alerting = true;
  box.replaceChildren(...present(el("span", { text: `🎉 ${t("donation_alert", { who: next.who, amount: money(next.amount, cur()) })}` }),
    next.message ? el("span", { class: "message", text: `“${next.message}”` }) : null));
  box.classList.remove("hidden");
  setTimeout(alertNext, 6000);
}

function alertGift(ev) {
  alerts.push({ who: who(ev), amount: ev.amount, message: ev.message || "" });
  if (!alerting) alertNext();
}

// The summary after the show (and during it, on request): the show in numbers and moments.
async function loadSummary() {
  $("#summary-card").classList.remove("hidden");
  let s;
  try { s = await api("GET", path("/summary")); } catch (err) { toast(errorText(err), "error"); return; }
  const c = s.currency;
  const stat = (v, k) => el("div", { class: "stat" }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k }));
  const minutes = s.duration_s == null ? "–" : t("minutes", { n: num(Math.round(s.duration_s / 60)) });
  const moments = [];
  if (s.busiest_minute) {
    moments.push(t("busiest_minute", { at: when(s.busiest_minute.at), orders: num(s.busiest_minute.orders), units: num(s.busiest_minute.units) }));
  }
  for (const d of s.deals) moments.push(t("deal_moment", { product: d.product_name, price: money(d.price, c), units: num(d.units), stock: num(d.stock) }));
  for (const g of s.biggest_gifts) moments.push(t("biggest_gift", { who: g.display_name, amount: money(g.amount, c) }));
  if (s.goal) moments.push(t("goal_moment", { n: num(s.goal.funded_units), goal: num(s.goal.goal_units), unit: s.goal.unit_name }));
  $("#summary").replaceChildren(
    el("div", { class: "stats" }, stat(minutes, t("duration")), stat(num(s.orders), t("orders")), stat(num(s.buyers), t("buyers")),
      stat(num(s.units), t("units")), stat(money(s.gross, c), t("gross")), stat(money(s.charity.total || 0, c), t("raised")),
      stat(money(s.charity.pledged || 0, c), t("pledged")), stat(money(s.charity.donated || 0, c), t("gifts", { n: num(s.givers) }))),
    el("table", { class: "mt-m" }, el("thead", {}, el("tr", {}, el("th", { text: t("product") }), el("th", { class: "n", text: t("units") }),
      el("th", { class: "n", text: t("gross") }))),
    el("tbody", {}, ...s.by_product.map((p) => el("tr", {}, el("td", { text: `${p.product_name} (${p.unit})` }),
      el("td", { class: "n", text: num(p.units) }), el("td", { class: "n", text: money(p.gross, c) }))))),
    el("h3", { text: t("moments") }),
    el("ul", { class: "plain moments" }, ...(moments.length ? moments.map((m) => el("li", { text: m })) : [el("li", { class: "muted", text: t("no_moments") })])));
}

// A host who farms adds their own produce here, photo included.
let farmer = null;

// A product saved whose photo was then refused: trying again sends the photo only, rather
// than saving the product twice.
let draft = null;

function offerProduct(product) {
  const text = `${product.name} (${product.unit}) · ${money(product.unit_price, product.currency)}`;
  const existing = [...$("#l-product").options].find((o) => o.value === product.id);
  if (existing) existing.textContent = text;
  else $("#l-product").prepend(el("option", { value: product.id, text }));
  $("#l-product").value = product.id;
  $("#l-price").value = String(product.unit_price);
}

async function createProduct(e) {
  e.preventDefault();
  const out = $("#product-form .form-error");
  out.textContent = "";
  const price = parseAmount($("#p-price").value, cur());
  if (!price) { out.textContent = t("price_hint", { example: money(95000, cur()) }); return; }
  const body = { farmer_id: farmer.id, name: $("#p-name").value.trim(), unit: $("#p-unit").value.trim(), unit_price: price,
    currency: cur(), weight_g: Number($("#p-weight").value) || 1000 };
  const same = draft && draft.name === body.name && draft.unit === body.unit && draft.unit_price === body.unit_price;
  try {
    let product = same ? draft : await api("POST", "/api/products", body);
    draft = product;
    offerProduct(product);  // listable now, photo or not
    const file = $("#p-photo").files[0];
    if (file) product = await upload("PUT", `/api/products/${encodeURIComponent(product.id)}/image`, file);
    draft = null;
    e.target.reset();
    toast(t("product_saved"));
  } catch (err) {
    out.textContent = draft ? `${t("saved_without_photo")} ${errorText(err)}` : errorText(err);
  }
}

function onEvent(ev) {
  const text = describe(ev, ctx);
  if (ev.type === "donation") alertGift(ev);
  if (text) { state.feed.unshift(text); state.feed.length = Math.min(state.feed.length, 60); }
  if (ev.type === "donation" && ev.message && !readout.some((d) => d.key === ev.donation_id)) {
    readout.push({ key: ev.donation_id || ev.id || `${ev.at}:${ev.message}`, who: who(ev), amount: ev.amount, message: ev.message });
  }
  if (ev.type === "pinned") state.pinned = (ev.listing && ev.listing.id) || ev.listing_id;
  if (ev.type === "flash_deal") state.deal = ev.deal || ev;
  if (ev.type === "chat_deleted" || ev.type === "moderated") state.chat = state.chat.filter((m) => m.id !== (ev.message_id || ev.target));
}

function takeTotals(totals) {
  state.totals = totals || {};
  const pin = state.totals.pinned;
  if (pin && typeof pin === "object") state.pinned = pin.id ?? pin.listing_id;
  if (state.totals.flash_deal) state.deal = state.totals.flash_deal;
}

function onFrame(frame) {
  if (frame.type === "subscribed" && frame.snapshot) {
    const snap = frame.snapshot;
    takeTotals(snap.totals || snap);
    if (Array.isArray(snap.chat || snap.recent_chat)) state.chat = (snap.chat || snap.recent_chat).slice(-100);
  } else if (frame.type === "ticker") {
    if (frame.totals) takeTotals(frame.totals);
    for (const ev of frame.events || []) onEvent(ev);
  } else if (frame.type === "chat_deleted") {
    state.chat = state.chat.filter((m) => m.id !== frame.message_id);
  } else if (frame.type === "chat" && frame.message) {
    if (frame.message.deleted) state.chat = state.chat.filter((m) => m.id !== frame.message.id);
    else state.chat = [...state.chat, frame.message].slice(-100);
  } else if (frame.type === "error") {
    toast(codeText(frame.code, frame.message, frame.details || {}), "error");
    return;
  } else {
    return;
  }
  render();
}

async function act(fn) {  // true once done; a failure is said, not thrown
  try { await fn(); return true; } catch (err) { toast(errorText(err), "error"); return false; }
}

const path = (p) => `/api/sessions/${encodeURIComponent(sessionId)}${p}`;

function pin(listingId) {
  return act(async () => {
    await api("POST", path("/pin"), { listing_id: listingId });
    state.pinned = listingId;
    render();
  });
}

function moderate(action, target) {
  return act(() => live.send({ type: "moderate", topic, action, target }, { expectReply: true }));
}

async function transition(which) {
  await act(async () => {
    const s = await api("POST", path(`/${which}`), {});
    state.session = { ...state.session, ...s };
    render();
    if (s.status === "ended") loadSummary();
  });
}

async function addListing(e) {
  e.preventDefault();
  const out = $("#listing-form .form-error");
  out.textContent = "";
  const price = parseAmount($("#l-price").value, cur());
  if (!price) { out.textContent = t("price_hint", { example: money(95000, cur()) }); return; }
  const body = { product_id: $("#l-product").value, price, stock: Number($("#l-stock").value) };
  const pledge = $("#l-pledge").value.trim();
  if (pledge) {
    if ($("#l-pledge-kind").value === "bps") {
      // "5" or "2.5" percent -> basis points, by string arithmetic
      const m = /^(\d{1,3})(?:[.,](\d{1,2}))?$/.exec(pledge);
      if (!m) { out.textContent = `${t("pledge")}?`; return; }
      body.pledge_bps = Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
    } else {
      body.pledge_per_unit = parseAmount(pledge, cur());
    }
  }
  if ($("#l-max").value) body.max_per_buyer = Number($("#l-max").value);
  try {
    const listing = await api("POST", path("/listings"), body);
    state.listings.set(listing.id, listing);
    e.target.reset();
    render();
  } catch (err) { out.textContent = errorText(err); }
}

async function startDeal(e) {
  e.preventDefault();
  const out = $("#deal-form .form-error");
  out.textContent = "";
  const price = parseAmount($("#d-price").value, cur());
  if (!price) { out.textContent = t("price_hint", { example: money(95000, cur()) }); return; }
  const body = {
    listing_id: $("#d-listing").value, price, stock: Number($("#d-stock").value),
    countdown_s: Number($("#d-countdown").value), duration_s: Number($("#d-duration").value),
    max_per_buyer: Number($("#d-max").value),
  };
  try {
    const deal = await api("POST", path("/flash-deals"), body);
    state.deal = deal;
    toast(t("deal"));
  } catch (err) { out.textContent = errorText(err); }
}

function tickDeal() {
  const d = state.deal;
  if (!d || !d.starts_at) { $("#deal-state").textContent = ""; return; }
  const now = Date.now(), s = Date.parse(d.starts_at), e = Date.parse(d.ends_at);
  $("#deal-state").textContent = now < s ? `${t("deal_starts")} ${clock(s - now)}` : now < e ? `${t("deal_ends")} ${clock(e - now)}` : t("deal_over");
}

async function load() {
  if (!requireLogin()) return;
  try {
    state.session = await api("GET", path(""));
  } catch (err) {
    $("#title").textContent = errorText(err);
    return;
  }
  const me = auth.user;
  if (!me || (state.session.host_id !== me.id && !(me.roles || []).includes("admin"))) {
    $("#denied").classList.remove("hidden");
    return;
  }
  $("#console").classList.remove("hidden");
  for (const l of state.session.listings || []) state.listings.set(l.id, l);
  if (state.session.totals) takeTotals(state.session.totals);
  state.deal = state.session.flash_deal || state.session.deal || null;
  // Browser sources for OBS (1920x1080, transparent): everything, or one part each.
  const overlay = `${location.origin}/overlay/sessions/${encodeURIComponent(sessionId)}`;
  $("#overlay-links").replaceChildren(...[["", "overlay_all"], ["?show=alerts", "overlay_alerts"],
    ["?show=goal", "overlay_goal"], ["?show=deal", "overlay_deal"]].map(([q, key]) => el("li", {},
    el("span", { text: `${t(key)}: ` }), el("a", { class: "wrap mono", href: overlay + q, target: "_blank", text: overlay + q }))));
  const room = $("#room-link");
  room.href = `/sessions/${encodeURIComponent(sessionId)}`;
  room.textContent = "↗ /sessions/" + sessionId;
  try {
    const { products } = await api("GET", "/api/products?limit=200");
    $("#l-product").replaceChildren(...products.filter((p) => p.currency === cur()).map((p) =>
      el("option", { value: p.id, text: `${p.name} (${p.unit}) · ${money(p.unit_price, p.currency)}` })));
  } catch (err) { toast(errorText(err), "error"); }
  render();
  loadReadout();
  loadRules();
  loadBans();
  if (state.session.status === "ended") loadSummary();
  const farms = (auth.user.roles || []).includes("farmer");  // fresh: boot re-read /api/me
  if (farms) {  // a host who farms adds their own products from here
    try {
      farmer = await api("GET", "/api/me/farmer", undefined, { quiet401: true });
      $("#product-card").classList.remove("hidden");
    } catch { farmer = null; }
  }
  live = new Live({ onState: connectionBadge($("#conn"), t), onError: (f) => toast(codeText(f.code, f.message, f.details || {}), "error") });
  window.panenLive = live;
  live.subscribe(topic, onFrame);
}

$("#go-live").addEventListener("click", () => transition("start"));
// Ending cannot be undone (orders stop on every server at once): asked once more.
$("#end").addEventListener("click", () => { if (window.confirm(t("confirm_end"))) transition("end"); });
$("#listing-form").addEventListener("submit", addListing);
$("#deal-form").addEventListener("submit", startDeal);
$("#rules-form").addEventListener("submit", saveRules);
$("#product-form").addEventListener("submit", createProduct);
$("#summary-refresh").addEventListener("click", loadSummary);
setInterval(tickDeal, 250);
onLangChange(() => state.session && render());
boot("host").then(load);
