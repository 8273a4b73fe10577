// A campaign to share: its progress in units, the latest gifts and disbursements, each with a
// link to its entry in the public transparency log.
import { $, api, boot, el, errorText, idFromPath, money, onLangChange, t, when } from "./common.js";
import { who } from "./events.js";
import { goalBar } from "./totals.js";

const campaignId = idFromPath("/campaigns/");
let page = null;

const entryLink = (index) => el("a", { class: "entry", href: `/api/transparency/entries?start=${index}&end=${index + 1}`,
  text: t("entry", { n: index }) });

function render() {
  if (!page) return;
  document.title = `Panen · ${page.title}`;
  $("#c-title").textContent = page.title;
  const charity = $("#c-charity");
  charity.textContent = page.charity_name;
  charity.href = `/charities/${encodeURIComponent(page.charity_id)}`;
  $("#c-goal").replaceChildren(goalBar({ unit_name: page.unit_name, unit_cost: page.unit_cost,
    funded_units: page.funded_units, goal_units: page.goal_units }));
  $("#c-raised").textContent = money(page.raised, page.currency);
  $("#c-gifts").replaceChildren(...(page.latest_gifts.length ? page.latest_gifts.map((g) => el("li", { class: "gift" },
    el("div", { class: "row" }, el("strong", { class: "grow", text: who(g) }), el("span", { text: money(g.amount, g.currency) })),
    g.message ? el("div", { text: `“${g.message}”` }) : null,
    el("div", { class: "muted" }, when(g.at), g.entry_index === null ? null : " · ", g.entry_index === null ? null : entryLink(g.entry_index))))
    : [el("li", { class: "muted", text: t("no_gifts_yet") })]));
  $("#c-disbursements").replaceChildren(...(page.disbursements.length ? page.disbursements.map((d) => el("li", { class: "disbursement" },
    el("div", { class: "row" }, el("strong", { class: "grow", text: d.purpose }), el("span", { text: money(d.amount, d.currency) })),
    el("div", { class: "mono", text: `${t("evidence")}: ${d.evidence_sha256}` }),
    d.evidence_url ? el("a", { href: d.evidence_url, text: d.evidence_url, class: "wrap" }) : null,
    el("div", { class: "muted" }, when(d.created_at), " · ", entryLink(d.entry_index))))
    : [el("li", { class: "muted", text: t("no_disbursements_yet") })]));
  $("#c-sessions").replaceChildren(...page.sessions.map((x) => el("li", {},
    el("a", { href: `/sessions/${encodeURIComponent(x.id)}`, text: x.title }), " ",
    el("span", { class: `badge ${x.status}`, text: t(`session_${x.status}`) }))));
}

async function share() {
  const data = { title: page ? page.title : "Panen", url: location.href };
  try {
    if (navigator.share) await navigator.share(data);
    else { await navigator.clipboard.writeText(location.href); $("#c-shared").textContent = t("link_copied"); }
  } catch { $("#c-shared").textContent = location.href; }
}

$("#c-share").addEventListener("click", share);
onLangChange(render);
boot("campaign").then(async () => {
  try {
    page = await api("GET", `/api/campaigns/${encodeURIComponent(campaignId)}`);
  } catch (err) {
    $("#c-title").textContent = err.status === 404 ? t("not_found") : errorText(err);
    return;
  }
  render();
});
