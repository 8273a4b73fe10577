// Ticker events as one line of text each, in the reader's language (API.md event types).
import { money, num, t } from "./common.js";

export function who(ev) {
  if (ev.visibility === "anonymous") return t("anonymous");
  const name = ev.display_name || ev.name || ev.donor_name || ev.buyer_name || ev.sponsor_name;
  // A giver who chose not to be named reaches us as the server's "Anonymous": in words of
  // the page's language.
  if (!name) return t("someone");
  return name === "Anonymous" ? t("anonymous") : name;
}

export function describe(ev, ctx) {
  const cur = ev.currency || ctx.currency;
  const listing = ev.listing || {};
  const product = ev.product_name || (ev.product && ev.product.name) || (listing.product && listing.product.name)
    || ctx.productName(ev.listing_id ?? listing.id) || "";
  switch (ev.type) {
    case "order_paid":
      return t("ev_order_paid", { who: who(ev), qty: num(ev.quantity ?? 1), product });
    case "donation":
    case "donation_message":  // a message the host approved, in a room that holds them back
      return t("ev_donation", { who: who(ev), amount: money(ev.amount, cur) }) + (ev.message ? ` — “${ev.message}”` : "");
    case "match":
      return t("ev_match", { who: ev.sponsor_name || who(ev), amount: money(ev.amount, cur) });
    case "milestone":
      return t("ev_milestone", { n: num(ev.funded_units ?? ev.units ?? 0), unit: ev.unit_name || "" });
    case "pinned":
      return t("ev_pinned", { product });
    case "flash_deal": {
      const deal = ev.deal || ev;
      return t("ev_flash_deal", { product: ctx.productName(deal.listing_id) || product, price: money(deal.price, cur) });
    }
    case "sold_out":
      return t("ev_sold_out", { product });
    case "refund":
      return t("ev_refund", { amount: money(ev.amount, cur) });
    case "energy":
      return t("ev_energy", { who: who(ev), points: num(ev.points), amount: money(ev.amount, cur) });
    default:
      return null;  // events this page does not show (presence, likes …)
  }
}

// The stream: HLS through the browser or hls.js, a plain video file, an embed, or a placeholder.
export function mountStream(box, url, el) {
  box.replaceChildren();
  if (!url) {
    box.append(el("div", { class: "placeholder" }, el("div", {}, el("img", { src: "/static/favicon.svg", alt: "", width: 56, height: 56 }), el("div", { text: t("no_stream") }))));
    return;
  }
  const path = new URL(url, location.href).pathname.toLowerCase();
  if (path.endsWith(".m3u8")) {
    const video = el("video", { controls: true, playsinline: true, muted: true, autoplay: true });
    box.append(video);
    if (video.canPlayType("application/vnd.apple.mpegurl")) { video.src = url; return; }
    const script = el("script", { src: "/static/vendor/hls.light.min.js" });
    script.addEventListener("load", () => {
      if (window.Hls && window.Hls.isSupported()) {
        const hls = new window.Hls();
        hls.loadSource(url);
        hls.attachMedia(video);
      }
    });
    document.head.append(script);
  } else if (/\.(mp4|webm|ogv)$/.test(path)) {
    box.append(el("video", { controls: true, playsinline: true, muted: true, autoplay: true, src: url }));
  } else {
    let src = url;
    const yt = /(?:youtube\.com\/watch\?v=|youtu\.be\/)([\w-]{6,})/.exec(url);
    if (yt) src = `https://www.youtube-nocookie.com/embed/${yt[1]}`;
    box.append(el("iframe", { src, allow: "autoplay; encrypted-media; picture-in-picture", allowfullscreen: true,
      sandbox: "allow-scripts allow-same-origin allow-presentation", referrerpolicy: "no-referrer", title: "stream" }));
  }
}

export function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
