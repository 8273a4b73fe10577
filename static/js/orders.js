// My orders: each parcel where it is (live), each order and what it cost with its shipping,
// and my shipping addresses.
import { addressFields, saveAddress } from "./address.js";
import { $, api, boot, el, errorText, money, onLangChange, requireLogin, t, toast, when } from "./common.js";
import { connectionBadge, Live } from "./live.js";

const state = { shipments: [], orders: [], addresses: [], donations: [] };

async function load() {
  if (!requireLogin()) return false;
  const [sh, or, ad, dn] = await Promise.all([
    api("GET", "/api/me/shipments?limit=50"),
    api("GET", "/api/me/orders?limit=50"),
    api("GET", "/api/me/addresses"),
    api("GET", "/api/me/donations?limit=50"),
  ]);
  state.shipments = sh.shipments;
  state.orders = or.orders;
  state.addresses = ad.addresses;
  state.donations = dn.donations.filter((d) => d.status === "paid");
  render();
  return true;
}

function statusBadge(prefix, status) {
  return el("span", { class: `badge st-${status}`, "data-status": status, text: t(`${prefix}_${status}`) });
}

function shipmentCard(s) {
  const items = s.items.filter((i) => i.status === "settled" || i.status === "completed" || s.status === "failed");
  const lines = [
    el("div", { class: "row" }, el("strong", { class: "grow", text: s.farmer_name }), statusBadge("sh", s.status)),
    el("div", { class: "muted", text: s.session_title }),
    el("ul", { class: "plain" }, ...items.map((i) => el("li", { text: `${i.quantity}× ${i.product_name} (${i.unit})` }))),
    el("div", { class: "muted", text: `${t("shipping")}: ${s.shipping_fee ? money(s.shipping_fee, s.currency || "IDR") : t("free_shipping")} · ${s.recipient}, ${s.city}` }),
  ];
  if (s.tracking_number) lines.push(el("div", { class: "tracking", text: t("tracking", { courier: s.courier || "", number: s.tracking_number }) }));
  if (s.failure_reason) lines.push(el("div", { class: "muted", text: s.failure_reason }));
  if (s.completes_at) lines.push(el("div", { class: "muted", text: t("completes_at", { when: when(s.completes_at) }) }));
  if (s.status === "shipped" || s.status === "delivered") {
    lines.push(el("button", { type: "button", class: "received", text: t("received_btn"), onclick: (e) => received(s, e.currentTarget) }));
  }
  return el("article", { class: "card shipment", "data-id": s.id }, ...lines);
}

async function received(s, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/shipments/${encodeURIComponent(s.id)}/status`, { status: "completed" });
    await load();
  } catch (err) {
    toast(errorText(err), "error");
    button.disabled = false;
  }
}

function orderRow(o) {
  const due = o.payment && o.payment.amount ? o.payment.amount : o.total;
  // A settled sale's pledge is in the charity's log: its receipt is one tap away.
  const pledged = o.pledge_amount > 0 && (o.status === "settled" || o.status === "completed");
  return el("li", { class: "order row", "data-id": o.id },
    el("span", { class: "grow" }, `${o.quantity}× · ${money(due, o.currency)}`,
      o.shipping_fee ? el("span", { class: "muted", text: ` (${t("incl_shipping", { fee: money(o.shipping_fee, o.currency) })})` }) : null),
    el("span", { class: "muted", text: when(o.created_at) }),
    pledged ? el("a", { class: "receipt", href: `/verify?order=${encodeURIComponent(o.id)}`, text: t("receipt") }) : null,
    statusBadge("os", o.status));
}

function donationRow(d) {
  return el("li", { class: "donation row", "data-id": d.id },
    el("span", { class: "grow", text: money(d.amount, d.currency) }),
    el("span", { class: "muted", text: when(d.paid_at || d.created_at) }),
    el("a", { class: "receipt", href: `/verify?donation=${encodeURIComponent(d.id)}`, text: t("receipt") }));
}

function addressRow(a) {
  return el("li", { class: "address", "data-id": a.id },
    el("div", { class: "row" },
      el("strong", { class: "grow", text: a.label ? `${a.label} · ${a.recipient}` : a.recipient }),
      a.is_default ? el("span", { class: "badge scheduled", text: t("default_address") }) : null),
    el("div", { class: "muted", text: `${a.street}, ${a.district}, ${a.city}, ${a.province} ${a.postal_code} · ${a.phone}` }),
    el("div", { class: "row mt-s" },
      a.is_default ? null : el("button", { type: "button", class: "secondary small", text: t("make_default"),
        onclick: () => act("POST", `/api/me/addresses/${encodeURIComponent(a.id)}/default`) }),
      el("button", { type: "button", class: "secondary small", text: t("remove"),
        onclick: () => act("DELETE", `/api/me/addresses/${encodeURIComponent(a.id)}`) })));
}

async function act(method, path) {
  try { await api(method, path); await load(); } catch (err) { toast(errorText(err), "error"); }
}

function render() {
  $("#shipments").replaceChildren(...(state.shipments.length
    ? state.shipments.map(shipmentCard) : [el("p", { class: "muted", text: t("no_shipments") })]));
  $("#orders").replaceChildren(...(state.orders.length
    ? state.orders.map(orderRow) : [el("li", { class: "muted", text: t("no_orders") })]));
  $("#addresses").replaceChildren(...state.addresses.map(addressRow));
  $("#donations-card").classList.toggle("hidden", !state.donations.length);
  $("#donations").replaceChildren(...state.donations.map(donationRow));
}

function newAddressForm() {
  const out = el("p", { class: "form-error muted", role: "alert" });
  const form = $("#address-new");
  form.replaceChildren(...addressFields("new"), out, el("button", { type: "submit", id: "address-submit", text: t("save") }));
  form.onsubmit = async (e) => {
    e.preventDefault();
    if (await saveAddress(form, out)) {
      newAddressForm();
      $("#new-address").open = false;
      await load();
    }
  };
}

onLangChange(() => { render(); newAddressForm(); });
boot("my_orders").then(load).then((ok) => {
  if (!ok) return;
  newAddressForm();
  const live = new Live({ onState: connectionBadge($("#conn"), t) });
  // A parcel moved, an order settled or was refunded: read them again.
  live.subscribe("me", (frame) => {
    if (frame.type === "ticker" && frame.events.some((e) => ["shipment", "order_paid", "refund", "payment_refunded"].includes(e.type))) load();
  });
});
