import { $, api, boot, el, errorText, money, onLangChange, t, when } from "./common.js";
import { charityTotal, goalBar } from "./totals.js";

let charities = new Map();

function sessionCard(s, detail) {
  const charity = charities.get(s.charity_id);
  const card = el("a", { class: "card session-card", href: `/sessions/${encodeURIComponent(s.id)}`, dataset: { sessionId: s.id } },
    el("div", { class: "row" },
      el("strong", { class: "grow title", text: s.title }),
      el("span", { class: `badge ${s.status}`, text: s.status === "live" ? "● LIVE" : when(s.scheduled_at) || t("upcoming") })));
  if (charity) card.append(el("div", { class: "muted", text: t("for_charity", { name: charity.name }) }));
  const totals = detail && detail.totals;
  if (totals && totals.charity) {
    card.append(el("div", { class: "row" }, el("span", { class: "grow muted", text: t("charity_total") }),
      el("strong", { class: "charity-total", text: money(totals.charity.total, s.currency) })));
  }
  if (totals && totals.goal) card.append(goalBar(totals.goal));
  return card;
}

async function loadSessions(status, boxId) {
  const box = $(`#${boxId}`);
  try {
    const { sessions } = await api("GET", `/api/sessions?status=${status}&limit=24`);
    // Live cards show their room totals; the detail carries the snapshot.
    const details = status === "live"
      ? await Promise.all(sessions.map((s) => api("GET", `/api/sessions/${encodeURIComponent(s.id)}`).catch(() => null)))
      : sessions.map(() => null);
    box.replaceChildren(...(sessions.length ? sessions.map((s, i) => sessionCard(s, details[i])) : [el("p", { class: "muted", text: t("no_sessions") })]));
  } catch (err) {
    box.replaceChildren(el("p", { class: "muted", text: errorText(err) }));
  }
}

async function loadCharities() {
  const { charities: list } = await api("GET", "/api/charities");
  charities = new Map(list.map((c) => [c.id, c]));
  $("#charities").replaceChildren(...list.map((c) =>
    el("a", { class: "card", href: `/charities/${encodeURIComponent(c.id)}` },
      el("div", { class: "row" }, el("strong", { class: "grow", text: c.name }),
        el("span", { class: "charity-total", text: money(charityTotal(c), c.currency || "IDR") })),
      el("div", { class: "muted", text: c.description }))));
}

async function render() {
  try { await loadCharities(); } catch (err) { $("#charities").replaceChildren(el("p", { class: "muted", text: errorText(err) })); }
  await Promise.all([loadSessions("live", "live"), loadSessions("scheduled", "upcoming")]);
}

boot("home").then(render);
onLangChange(render);
