// A host's shows: each with its console and room, and a form to create or schedule one.
import { $, api, auth, boot, el, errorText, onLangChange, requireLogin, t, when } from "./common.js";

let charities = [];

function showItem(s) {
  const id = encodeURIComponent(s.id);
  const time = s.status === "scheduled" && s.scheduled_at ? t("starts_at", { when: when(s.scheduled_at) })
    : when(s.started_at || s.created_at);
  return el("li", { class: "row show", dataset: { sessionId: s.id } },
    el("span", { class: "grow" }, el("strong", { text: s.title }), el("br"), el("span", { class: "muted", text: time })),
    el("span", { class: `badge ${s.status}`, text: t(`session_${s.status}`) }),
    el("a", { class: "button small", href: `/host/sessions/${id}`, text: t("open_console") }),
    el("a", { class: "button small secondary", href: `/sessions/${id}`, text: t("open_room") }));
}

async function loadShows() {
  const { sessions } = await api("GET", `/api/sessions?host_id=${encodeURIComponent(auth.user.id)}&limit=100`);
  // What is on now first, then what is coming, then what is over.
  const order = { live: 0, scheduled: 1, ended: 2 };
  sessions.sort((a, b) => order[a.status] - order[b.status]);
  $("#shows").replaceChildren(...(sessions.length ? sessions.map(showItem) : [el("li", { class: "muted", text: t("no_shows") })]));
}

function fillCampaigns() {
  const charity = charities.find((c) => c.id === $("#s-charity").value);
  const currency = $("#s-currency").value;
  const options = (charity ? charity.campaigns || [] : []).filter((k) => (k.currency || "IDR") === currency);
  $("#s-campaign").replaceChildren(el("option", { value: "", text: t("no_campaign") }),
    ...options.map((k) => el("option", { value: k.id, text: `${k.title} (${k.unit_name})` })));
}

async function create(e) {
  e.preventDefault();
  const out = $("#show-form .form-error");
  out.textContent = "";
  const body = { title: $("#s-title").value.trim(), charity_id: $("#s-charity").value, currency: $("#s-currency").value };
  if ($("#s-campaign").value) body.campaign_id = $("#s-campaign").value;
  if ($("#s-stream").value.trim()) body.stream_url = $("#s-stream").value.trim();
  // datetime-local is the host's wall clock: sent with its offset, as the contract asks.
  if ($("#s-when").value) body.scheduled_at = new Date($("#s-when").value).toISOString();
  if ($("#s-moderate").checked) body.moderate_messages = true;
  try {
    const s = await api("POST", "/api/sessions", body);
    location.href = `/host/sessions/${encodeURIComponent(s.id)}`;
  } catch (err) { out.textContent = errorText(err); }
}

async function load() {
  if (!requireLogin()) return;
  if (!auth.has("host")) { $("#denied").classList.remove("hidden"); return; }
  $("#shows-page").classList.remove("hidden");
  try {
    ({ charities } = await api("GET", "/api/charities?limit=200"));
    $("#s-charity").replaceChildren(...charities.map((c) => el("option", { value: c.id, text: c.name })));
    fillCampaigns();
    await loadShows();
  } catch (err) { $("#shows").replaceChildren(el("li", { class: "muted", text: errorText(err) })); }
}

$("#s-charity").addEventListener("change", fillCampaigns);
$("#s-currency").addEventListener("change", fillCampaigns);
$("#show-form").addEventListener("submit", create);
onLangChange(() => auth.user && auth.has("host") && loadShows());
boot("my_shows").then(load);
