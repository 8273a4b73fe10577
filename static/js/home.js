import { $, api, boot, el, errorText, money, onLangChange, t, when } from "./common.js";
import { goalBar } from "./totals.js";

let charities = new Map();

function sessionCard(s, detail) {
  const charity = charities.get(s.charity_id);
  const card = el("a", { class: "card session-card", href: `/sessions/${encodeURIComponent(s.id)}`, dataset: { sessionId: s.id } },
    el("div", { class: "row" },
      el("strong", { class: "grow title", text: s.title }),
      el("span", { class: `badge ${s.status}`, text: s.status === "live" ? "● LIVE" : when(s.scheduled_at) || t("upcoming") })));
  if (charity) card.append(el("div", { class: "muted", text: t("for_charity", { name: charity.name }) }));
  if (detail && detail.report) {
    const received = detail.report.received || 0;
    card.append(el("div", { class: "row" }, el("span", { class: "grow muted", text: t("charity_total") }),
      el("strong", { class: "charity-total", text: money(received, s.currency) })));
    const k = detail.session && detail.session.campaign;
    // Funded units as the room counts them: whole units of the charity total.
    if (k) card.append(goalBar({ ...k, funded_units: Math.floor(received / k.unit_cost) }));
  }
  return card;
}

async function loadSessions(status, boxId) {
  const box = $(`#${boxId}`);
  try {
    const { sessions } = await api("GET", `/api/sessions?status=${status}&limit=24`);
    // Live cards show their room totals; the detail carries the snapshot.
    const details = status === "live"
      ? await Promise.all(sessions.map(async (s) => {
        const id = encodeURIComponent(s.id);
        const [session, report] = await Promise.all([api("GET", `/api/sessions/${id}`), api("GET", `/api/sessions/${id}/charity-report`)]);
        return { session, report };
      }))
      : sessions.map(() => null);
    box.replaceChildren(...(sessions.length ? sessions.map((s, i) => sessionCard(s, details[i])) : [el("p", { class: "muted", text: t("no_sessions") })]));
  } catch (err) {
    box.replaceChildren(el("p", { class: "muted", text: errorText(err) }));
  }
}

async function loadCharities() {
  const { charities: list } = await api("GET", "/api/charities");
  charities = new Map(list.map((c) => [c.id, c]));
  const reports = await Promise.all(list.map((c) => api("GET", `/api/charities/${encodeURIComponent(c.id)}/report`)));
  $("#charities").replaceChildren(...list.map((c, i) => {
    const totals = Object.entries(reports[i].currencies || {}).map(([cur, r]) => money(r.received, cur));
    return el("a", { class: "card", href: `/charities/${encodeURIComponent(c.id)}` },
      el("div", { class: "row" }, el("strong", { class: "grow", text: c.name }),
        el("span", { class: "charity-total", text: totals.join(" · ") || money(0, "IDR") })),
      el("div", { class: "muted", text: c.description }));
  }));
}

async function render() {
  try { await loadCharities(); } catch (err) { $("#charities").replaceChildren(el("p", { class: "muted", text: errorText(err) })); }
  await Promise.all([loadSessions("live", "live"), loadSessions("scheduled", "upcoming")]);
}

boot("home").then(render);
onLangChange(render);
