// Check a donation receipt in this browser: the entry's hash, its inclusion in the signed tree,
// the checkpoint's Ed25519 signature, and (when the server answers) that today's log still
// extends the receipt's checkpoint. Any failure is shown plainly as tampering.
import { $, api, auth, boot, el, errorText, money, present, t, when } from "./common.js";
import {
  b64decode, b64encode, equal, hasWebCrypto, leafHash, parseVerifierKey, ProofError, verifyCheckpoint,
  verifyConsistency, verifyInclusion,
} from "./merkle.js";

const enc = new TextEncoder();
const DEFAULT_ORIGIN = "panen.id/transparency-log";

function parseEntry(receipt) {
  const raw = receipt.entry;
  if (typeof raw === "string") return { bytes: enc.encode(raw), data: JSON.parse(raw) };
  if (raw && typeof raw === "object" && typeof raw.entry === "string") return { bytes: enc.encode(raw.entry), data: JSON.parse(raw.entry) };
  throw new ProofError("the receipt carries no log entry");
}

function proofOf(receipt) {
  const p = receipt.inclusion_proof;
  const hashes = Array.isArray(p) ? p : p && Array.isArray(p.hashes) ? p.hashes : null;
  if (!hashes) throw new ProofError("the receipt carries no inclusion proof");
  if (p && !Array.isArray(p)) {
    if (p.index !== undefined && p.index !== receipt.entry_index) throw new ProofError("the proof is for another entry");
    if (p.size !== undefined && p.size !== receipt.checkpoint.size) throw new ProofError("the proof is for another tree size");
  }
  return hashes.map(b64decode);
}

// The receipt's plain-language fields must agree with the signed entry they claim to show.
function fieldsAgree(receipt, entry) {
  const subject = receipt.donation || receipt.order || {};
  const e = entry.data || {};
  for (const key of ["id", "amount", "currency", "charity_id"]) {
    if (subject[key] !== undefined && e[key] !== undefined && subject[key] !== e[key]) {
      throw new ProofError(`the receipt says ${key} = ${subject[key]}, the signed entry says ${e[key]}`);
    }
  }
}

// The entry names the donor only as hex SHA-256(salt || donor id); the receipt gives the donor
// the salt. Null when the receipt carries nothing to open the commitment with.
async function commitmentCheck(receipt, entry) {
  const donor = receipt.donor;
  const commitment = entry.data && entry.data.donor;
  if (!donor || typeof donor.salt !== "string" || typeof donor.id !== "string" || typeof commitment !== "string") return null;
  const asHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const candidates = [enc.encode(donor.salt + donor.id)];  // the salt as the text it is sent as
  try {
    const raw = b64decode(donor.salt);  // or as base64 of the salt's bytes
    const both = new Uint8Array(raw.length + enc.encode(donor.id).length);
    both.set(raw); both.set(enc.encode(donor.id), raw.length);
    candidates.push(both);
  } catch { /* not base64: only the text form applies */ }
  for (const bytes of candidates) {
    if (asHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))) === commitment) return true;
  }
  return false;
}

function addCheck(key, ok, detail) {
  $("#checks").append(el("li", { dataset: { ok: String(ok), check: key } }, t(key), detail ? el("div", { class: "muted", text: detail }) : null));
}

function verdict(ok, detail) {
  const box = $("#verdict");
  box.className = `verdict ${ok ? "ok" : "bad"}`;
  // Native replaceChildren writes a null as the text "null": only nodes go in.
  box.replaceChildren(...present(el("div", { text: ok ? t("verified") : t("tampered") }), detail ? el("div", { class: "muted", text: detail }) : null));
  box.dataset.result = ok ? "verified" : "tampered";
}

// Nothing was checked (no receipt, or it could not be loaded): that is no verdict on the
// log, so never TAMPERED.
function notice(result, text, ...more) {
  const box = $("#verdict");
  box.className = "verdict warn";
  box.replaceChildren(el("div", { text }), ...more);
  box.dataset.result = result;
}

function showDetails(receipt, entry) {
  const d = receipt.donation || receipt.order || receipt.redemption || {};
  const box = $("#details");
  box.classList.remove("hidden");
  box.replaceChildren(...present(
    el("h2", { text: t("receipt") }),
    el("p", {}, el("strong", { text: money(d.amount, d.currency || "IDR") }), " · ", when(d.created_at || d.paid_at)),
    d.message ? el("p", { text: `“${d.message}”` }) : null,
    el("p", { class: "mono", text: `${t("entry", { n: receipt.entry_index })} · ${entry ? new TextDecoder().decode(entry.bytes) : ""}` }),
    el("h2", { text: t("trace") }),
    el("ul", {}, ...(Array.isArray(receipt.trace) ? receipt.trace : []).map((s) => el("li", { class: "mono",
      text: [s.kind || s.type, s.purpose, s.amount !== undefined ? money(s.amount, s.currency || d.currency || "IDR") : null, s.at || s.created_at, s.evidence_sha256]
        .filter((x) => x !== undefined && x !== null && x !== "").join(" · ") }))),
  ));
}

async function check() {
  $("#checks").replaceChildren();
  $("#details").classList.add("hidden");
  if (!hasWebCrypto()) { verdict(false, t("no_webcrypto")); return; }
  let receipt;
  try {
    receipt = JSON.parse($("#receipt").value);
    if (!receipt || typeof receipt !== "object" || !receipt.checkpoint) throw new Error("no checkpoint");
  } catch (err) {
    notice("invalid", t("invalid_receipt"), el("div", { class: "muted", text: err.message }));
    return;
  }
  let step = "check_leaf";
  let entry = null;
  try {
    // The key this browser pinned (or the one typed in); the receipt's own copy only as a
    // last resort, since a receipt forged whole would carry a matching forged key.
    let keyText = $("#pubkey").value.trim();
    if (!keyText && receipt.public_key) keyText = receipt.public_key.vkey || receipt.public_key.public_key;
    const vkey = await parseVerifierKey(keyText, receipt.checkpoint.origin || DEFAULT_ORIGIN);
    entry = parseEntry(receipt);
    const leaf = await leafHash(entry.bytes);
    if (receipt.leaf_hash !== undefined && !equal(leaf, b64decode(receipt.leaf_hash))) throw new ProofError("the entry's hash is not the receipt's leaf hash");
    fieldsAgree(receipt, entry);
    addCheck(step, true);
    step = "check_signature";
    const root = await verifyCheckpoint(receipt.checkpoint, vkey);
    addCheck(step, true, `${receipt.checkpoint.origin} · ${t("tree_size", { n: receipt.checkpoint.size })}`);
    step = "check_inclusion";
    await verifyInclusion(receipt.entry_index, receipt.checkpoint.size, leaf, proofOf(receipt), root);
    addCheck(step, true);
    step = "check_commitment";
    const committed = await commitmentCheck(receipt, entry);
    if (committed === false) throw new ProofError("the donor commitment does not match the salt");
    if (committed === true) addCheck(step, true);
    step = "check_consistency";
    await consistencyWithToday(receipt.checkpoint, root, vkey);
    verdict(true);
  } catch (err) {
    addCheck(step, false, err.message);
    verdict(false, err instanceof ProofError ? err.message : errorText(err));
  }
  showDetails(receipt, entry);
}

// The log today must extend the receipt's checkpoint: a server that rewrote history cannot
// produce this proof. Skipped (not failed) when this page is opened away from the server.
async function consistencyWithToday(cp, root, vkey) {
  let latest;
  try { latest = await api("GET", "/api/transparency/checkpoint"); } catch { return; }
  const latestRoot = await verifyCheckpoint(latest, vkey);
  if (latest.size < cp.size) throw new ProofError("the log is smaller today than the receipt's checkpoint");
  let hashes = [];
  if (latest.size !== cp.size) {
    const proof = await api("GET", `/api/transparency/proof/consistency?first=${cp.size}&second=${latest.size}`);
    hashes = proof.hashes.map(b64decode);
  }
  await verifyConsistency(cp.size, latest.size, hashes, root, latestRoot);
  addCheck("check_consistency", true, `${cp.size} → ${latest.size}`);
}

async function fetchKey() {
  try {
    const key = await api("GET", "/api/transparency/public-key");
    const text = key.vkey || key.public_key;
    // Trust on first use: remember the key, and say so loudly if the server's key changes.
    const seen = localStorage.getItem("panen.logkey");
    $("#key-warning").classList.toggle("hidden", !seen || seen === text);
    if (!seen) localStorage.setItem("panen.logkey", text);
    $("#pubkey").value = text;
  } catch (err) {
    $("#key-warning").classList.add("hidden");
  }
}

// A donor's gift (`?donation=`) or a buyer's pledge (`?order=`): their receipt, checked here.
const RECEIPTS = {
  donation: (id) => `/api/donations/${encodeURIComponent(id)}/receipt`,
  order: (id) => `/api/orders/${encodeURIComponent(id)}/pledge-receipt`,
};

async function loadReceipt(donationId, kind = "donation") {
  if (!auth.token) {  // a receipt is its donor's: log in, then come back here
    const back = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    notice("login", t("login_for_receipt"), el("a", { href: back, text: t("login") }));
    return;
  }
  try {
    const receipt = await api("GET", RECEIPTS[kind](donationId));
    $("#receipt").value = JSON.stringify(receipt, null, 2);
    await check();
  } catch (err) {
    notice("not_loaded", t("receipt_not_loaded"), el("div", { class: "muted", text: errorText(err) }));
  }
}

function listMine() {
  const mine = JSON.parse(localStorage.getItem("panen.donations") || "[]");
  if (!auth.token || !mine.length) return;
  $("#mine").classList.remove("hidden");
  $("#mine-list").replaceChildren(...mine.slice(0, 10).map((id) => el("button", { type: "button", class: "secondary small", text: id, onclick: () => loadReceipt(id) })));
}

$("#check").addEventListener("click", check);
$("#fetch-key").addEventListener("click", fetchKey);
$("#file").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (f) { $("#receipt").value = await f.text(); await check(); }
});

boot("verify").then(async () => {
  await fetchKey();
  listMine();
  const q = new URLSearchParams(location.search);
  if (q.get("donation")) await loadReceipt(q.get("donation"));
  else if (q.get("order")) await loadReceipt(q.get("order"), "order");
});
