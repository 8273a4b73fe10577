// A shipping address: the form (Indonesian fields), and a dialog that asks for one when a
// purchase needs it. The server checks every field and names the one that is wrong.
import { ApiError, api, el, errorText, t } from "./common.js";

export const PROVINCES = [
  "Aceh", "Sumatera Utara", "Sumatera Barat", "Riau", "Kepulauan Riau", "Jambi", "Bengkulu",
  "Sumatera Selatan", "Kepulauan Bangka Belitung", "Lampung", "Banten", "DKI Jakarta", "Jawa Barat",
  "Jawa Tengah", "DI Yogyakarta", "Jawa Timur", "Bali", "Nusa Tenggara Barat", "Nusa Tenggara Timur",
  "Kalimantan Barat", "Kalimantan Tengah", "Kalimantan Selatan", "Kalimantan Timur", "Kalimantan Utara",
  "Sulawesi Utara", "Gorontalo", "Sulawesi Tengah", "Sulawesi Barat", "Sulawesi Selatan",
  "Sulawesi Tenggara", "Maluku", "Maluku Utara", "Papua", "Papua Barat", "Papua Barat Daya",
  "Papua Selatan", "Papua Tengah", "Papua Pegunungan",
];

const FIELDS = [
  ["recipient", { maxlength: 120, autocomplete: "name", required: true }],
  ["phone", { maxlength: 24, inputmode: "tel", autocomplete: "tel", required: true }],
  ["street", { maxlength: 300, autocomplete: "street-address", required: true }],
  ["district", { maxlength: 120, required: true }],
  ["city", { maxlength: 120, autocomplete: "address-level2", required: true }],
  ["province", null],
  ["postal_code", { maxlength: 5, inputmode: "numeric", autocomplete: "postal-code", required: true }],
  ["notes", { maxlength: 200 }],
  ["label", { maxlength: 40 }],
];

// The form's fields, each with its label; `values` pre-fills them.
export function addressFields(prefix, values = {}) {
  const out = [];
  for (const [name, attrs] of FIELDS) {
    const id = `${prefix}-${name}`;
    out.push(el("label", { for: id, text: t(name) }));
    if (name === "province") {
      const sel = el("select", { id, name, required: true, autocomplete: "address-level1" },
        ...PROVINCES.map((p) => el("option", { value: p, text: p })));
      sel.value = values.province || "Jawa Barat";
      out.push(sel);
    } else {
      out.push(el("input", { id, name, value: values[name] || "", ...attrs }));
    }
  }
  return out;
}

export function readAddress(form) {
  const body = {};
  for (const [name] of FIELDS) {
    const v = form.querySelector(`[name="${name}"]`).value.trim();
    if (v || !["notes", "label"].includes(name)) body[name] = v;
  }
  return body;
}

// Save a new address; on a bad field, mark it and say which.
export async function saveAddress(form, out, extra = {}) {
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
  try {
    return (await api("POST", "/api/me/addresses", { ...readAddress(form), ...extra })).address;
  } catch (err) {
    const field = err instanceof ApiError ? err.details.field : null;
    const input = field && form.querySelector(`[name="${field}"]`);
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    out.textContent = errorText(err);  // "Check this field: Postal code."
    return null;
  }
}

// Asks for an address in a dialog; resolves with the saved address, or null if dismissed.
export function askAddress() {
  return new Promise((resolve) => {
    const out = el("p", { class: "form-error muted", role: "alert" });
    const form = el("form", { method: "dialog", id: "address-form" },
      el("h2", { text: t("add_address") }), el("p", { class: "muted", text: t("address_needed") }),
      ...addressFields("ask"), out,
      el("div", { class: "row mt-l" },
        el("button", { type: "button", class: "secondary", id: "address-cancel", text: t("cancel") }),
        el("button", { type: "submit", class: "grow", id: "address-save", text: t("save") })));
    const dialog = el("dialog", { id: "address-dialog" }, form);
    document.body.append(dialog);
    const done = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    form.querySelector("#address-cancel").addEventListener("click", () => done(null));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const saved = await saveAddress(form, out, { is_default: true });
      if (saved) done(saved);
    });
    dialog.showModal();
  });
}
