// A tiny dictionary: Indonesian first, English second. t("key", {name: "x"}) fills {name}.
const DICT = {
  id: {
    tagline: "Belanja hasil tani, sambil berbagi.",
    home: "Beranda", verify: "Verifikasi", farmer: "Dasbor petani", login: "Masuk", logout: "Keluar",
    register: "Daftar", language: "Bahasa", live: "Sedang live", upcoming: "Akan datang",
    no_sessions: "Belum ada sesi.", charities: "Lembaga amal", for_charity: "untuk {name}",
    charity_total: "Total untuk amal", funded: "{n} dari {goal} {unit} terdanai",
    handle: "Nama pengguna", password: "Kata sandi", display_name: "Nama tampilan",
    have_account: "Sudah punya akun?", no_account: "Belum punya akun?",
    viewers: "Penonton", viewer_one: "Penonton", likes: "Suka", orders: "Pesanan", gross: "Penjualan",
    buy: "Beli", donate: "Donasi", send: "Kirim", like: "Suka", stock_left: "Sisa stok: {n}",
    sold_out: "Habis", pledge_bps: "{pct} dari setiap penjualan untuk amal",
    pledge_unit: "{amount} per unit untuk amal", pinned: "Produk pilihan", products: "Produk",
    deal: "Flash deal", deal_starts: "Mulai dalam", deal_ends: "Berakhir dalam", deal_over: "Flash deal selesai",
    chat: "Obrolan", chat_placeholder: "Tulis pesan…", ticker: "Aktivitas", top_donors: "Donatur teratas",
    matched_by: "Dilipatgandakan oleh {name}", amount: "Jumlah", message: "Pesan (opsional)",
    visibility: "Tampilkan nama", vis_public: "Nama lengkap", vis_first_name: "Nama depan saja",
    vis_anonymous: "Anonim", cancel: "Batal", pay: "Bayar", paid_thanks: "Terima kasih! Pembayaran berhasil.",
    pay_how: "Bayar dengan", pay_later: "Nanti saja", pay_returned: "Pembayaran Anda sedang dicek.",
    method_qris: "QRIS (OVO, DANA, LinkAja, m-banking)", method_gopay: "GoPay", method_shopeepay: "ShopeePay",
    method_bca_va: "Virtual Account BCA", method_bni_va: "Virtual Account BNI",
    method_bri_va: "Virtual Account BRI", method_permata_va: "Virtual Account Permata",
    method_mandiri_bill: "Mandiri Bill", method_sandbox: "Sandbox (uji coba)",
    donated_thanks: "Terima kasih atas donasi Anda!", login_needed: "Masuk dulu untuk melanjutkan.",
    connecting: "Menghubungkan…", connected: "Terhubung", reconnecting: "Menyambung ulang…",
    no_stream: "Siaran akan tampil di sini", ev_order_paid: "{who} membeli {qty}× {product}",
    ev_donation: "{who} berdonasi {amount}", ev_match: "{who} menambah {amount}",
    ev_milestone: "Tercapai: {n} {unit}!", ev_pinned: "Dipilih: {product}", ev_flash_deal: "Flash deal: {product} {price}",
    ev_sold_out: "{product} habis terjual", ev_refund: "Pengembalian dana {amount}",
    my_points: "Poin energi saya", redeem: "Tukarkan jadi donasi", points_expire: "{n} poin kedaluwarsa {when}",
    energy_units: "Energi penonton menjadi {n} {unit}", energy_amount: "Energi penonton menjadi {amount}",
    ev_energy: "{who} menukar {points} poin energi menjadi {amount}", no_pool: "Belum ada sponsor energi",
    redeemed: "Terima kasih! {points} poin menjadi {amount}",
    someone: "Seseorang", anonymous: "Anonim", host_console: "Konsol host", go_live: "Mulai live",
    end_session: "Akhiri sesi", pin: "Sematkan", start_deal: "Mulai flash deal", add_listing: "Tambah produk",
    product: "Produk", price: "Harga", stock: "Stok", pledge: "Janji amal", pledge_kind: "Jenis janji",
    pledge_percent: "Persen (%)", pledge_fixed: "Tetap per unit", max_per_buyer: "Maks. per pembeli",
    countdown_s: "Hitung mundur (detik)", duration_s: "Durasi (detik)", readout: "Pesan donatur untuk dibacakan",
    mark_read: "Sudah dibaca", moderation: "Moderasi", delete: "Hapus", mute: "Bisukan",
    not_host: "Hanya host sesi ini yang bisa membuka konsol.", status: "Status",
    units_sold: "Unit terjual", pledged: "Janji amal", fees: "Biaya", payout_pending: "Hak Anda, belum dicairkan",
    payout_settled: "Sudah masuk rekening", payout_in_transit: "Sedang dikirim ke bank", by_product: "Per produk", by_session: "Per sesi",
    payouts: "Pencairan", currency: "Mata uang", owed: "Hak Anda", awaiting_delivery: "Menunggu paket diterima",
    next_payout: "Dicairkan berikutnya", next_payout_at: "Pencairan berikutnya", min_payout: "minimal",
    payout_account: "Rekening pencairan", bank: "Bank", account_number: "Nomor rekening", holder_name: "Nama pemilik rekening",
    save: "Simpan", saved: "Tersimpan.", payout_history: "Riwayat pencairan", date: "Tanggal",
    to_account: "Ke rekening", no_account: "Belum ada rekening: isi di bawah agar bisa dicairkan.",
    st_pending: "disiapkan", st_submitted: "dikirim", st_completed: "diterima", st_failed: "gagal, dikembalikan",
    sales_over_time: "Penjualan dari waktu ke waktu", not_farmer: "Halaman ini untuk petani. Masuk dengan akun petani.",
    received: "Diterima", matched: "Dilipatgandakan", disbursed: "Disalurkan", balance: "Saldo",
    disbursements: "Penyaluran dana", purpose: "Tujuan", evidence: "Bukti", units: "Unit",
    record_disbursement: "Catat penyaluran", evidence_file: "Berkas bukti (hash dihitung di browser)",
    evidence_url: "Tautan bukti (opsional)", campaigns: "Kampanye", donations: "Donasi",
    verify_title: "Periksa tanda terima donasi", verify_intro: "Tempel tanda terima (JSON) atau buka berkasnya. Browser Anda sendiri yang memeriksa bukti Merkle dan tanda tangannya; tidak perlu percaya pada server.",
    open_file: "Buka berkas", check: "Periksa", public_key: "Kunci publik log (base64)",
    use_server_key: "Ambil dari server ini", verified: "Terverifikasi: tanda terima ini asli dan tercatat di log.",
    tampered: "DIUBAH: tanda terima ini tidak cocok dengan log. Jangan percayai isinya.",
    invalid_receipt: "Ini bukan tanda terima yang valid.", check_leaf: "Hash entri cocok dengan isinya",
    check_inclusion: "Entri termasuk dalam pohon Merkle checkpoint (RFC 9162)",
    check_signature: "Tanda tangan Ed25519 checkpoint sah", check_consistency: "Log saat ini konsisten dengan checkpoint tanda terima",
    check_commitment: "Komitmen donatur cocok dengan garam", trace: "Jejak dana",
    no_webcrypto: "Browser ini tidak menyediakan WebCrypto (perlu https atau localhost).",
    key_changed: "Peringatan: kunci publik server berbeda dari yang pernah Anda lihat.",
    error: "Terjadi kesalahan", loading: "Memuat…", not_found: "Tidak ditemukan.", my_receipts: "Tanda terima saya",
    receipt: "Tanda terima", verify_this: "Periksa", session: "Sesi", entry: "Entri #{n}",
    my_orders: "Pesanan saya", addresses: "Alamat pengiriman", add_address: "Tambah alamat",
    address_needed: "Ke mana kiriman Anda? Isi alamat pengiriman dulu.", recipient: "Nama penerima",
    phone: "Nomor HP", street: "Jalan, nomor, RT/RW, kelurahan", district: "Kecamatan",
    city: "Kota/kabupaten", province: "Provinsi", postal_code: "Kode pos", notes: "Catatan untuk kurir (opsional)",
    label: "Label (Rumah, Kantor…)", make_default: "Jadikan utama", default_address: "Utama", remove: "Hapus",
    shipping: "Ongkos kirim", incl_shipping: "termasuk ongkir {fee}", free_shipping: "Gratis ongkir",
    my_shipments: "Paket saya", no_shipments: "Belum ada paket.", no_orders: "Belum ada pesanan.",
    received_btn: "Pesanan diterima", tracking: "Resi {courier} {number}", completes_at: "Selesai otomatis {when}",
    sh_packing: "Dikemas", sh_packed: "Siap kirim", sh_shipped: "Dikirim", sh_delivered: "Sampai",
    sh_completed: "Selesai", sh_failed: "Gagal dikirim, dana dikembalikan", sh_cancelled: "Dibatalkan",
    os_reserved: "Menunggu pembayaran", os_paid: "Dibayar", os_settled: "Diproses", os_completed: "Selesai",
    os_expired: "Kedaluwarsa", os_cancelled: "Dibatalkan", os_refunded: "Dana dikembalikan",
    packing_list: "Daftar kemas", print: "Cetak", download_csv: "Unduh CSV", boxes: "Paket",
    to_pack: "Yang harus dikemas", mark_packed: "Sudah dikemas", mark_shipped: "Kirim",
    mark_delivered: "Sudah sampai", mark_failed: "Gagal kirim", courier: "Kurir", tracking_number: "Nomor resi",
    fail_reason: "Alasan (mis. ditolak penerima)", all_boxes: "Semua paket", shipping_rates: "Tarif kirim",
    rate_flat: "Tarif tetap per paket", rate_zone: "Per zona: dasar + per kg", base_fee: "Biaya dasar",
    per_kg_fee: "Per kg", zone_any: "Zona lain", weight: "Berat",
    zone_sumatera: "Sumatera", zone_jawa: "Jawa", zone_bali_nusa_tenggara: "Bali & Nusa Tenggara",
    zone_kalimantan: "Kalimantan", zone_sulawesi: "Sulawesi", zone_maluku_papua: "Maluku & Papua",
  },
  en: {
    tagline: "Buy from farmers, give while you shop.",
    home: "Home", verify: "Verify", farmer: "Farmer dashboard", login: "Log in", logout: "Log out",
    register: "Register", language: "Language", live: "Live now", upcoming: "Upcoming",
    no_sessions: "No sessions yet.", charities: "Charities", for_charity: "for {name}",
    charity_total: "Charity total", funded: "{n} of {goal} {unit} funded",
    handle: "Username", password: "Password", display_name: "Display name",
    have_account: "Already have an account?", no_account: "No account yet?",
    viewers: "Viewers", viewer_one: "Viewer", likes: "Likes", orders: "Orders", gross: "Sales",
    buy: "Buy", donate: "Donate", send: "Send", like: "Like", stock_left: "{n} left",
    sold_out: "Sold out", pledge_bps: "{pct} of every sale goes to charity",
    pledge_unit: "{amount} per unit goes to charity", pinned: "Featured product", products: "Products",
    deal: "Flash deal", deal_starts: "Starts in", deal_ends: "Ends in", deal_over: "Flash deal over",
    chat: "Chat", chat_placeholder: "Say something…", ticker: "Activity", top_donors: "Top donors",
    matched_by: "Matched by {name}", amount: "Amount", message: "Message (optional)",
    visibility: "Show my name", vis_public: "Full name", vis_first_name: "First name only",
    vis_anonymous: "Anonymous", cancel: "Cancel", pay: "Pay", paid_thanks: "Thank you! Payment received.",
    pay_how: "Pay with", pay_later: "Not now", pay_returned: "Your payment is being checked.",
    method_qris: "QRIS (OVO, DANA, LinkAja, bank apps)", method_gopay: "GoPay", method_shopeepay: "ShopeePay",
    method_bca_va: "BCA virtual account", method_bni_va: "BNI virtual account",
    method_bri_va: "BRI virtual account", method_permata_va: "Permata virtual account",
    method_mandiri_bill: "Mandiri Bill", method_sandbox: "Sandbox (test)",
    donated_thanks: "Thank you for your donation!", login_needed: "Log in first to continue.",
    connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…",
    no_stream: "The stream will appear here", ev_order_paid: "{who} bought {qty}× {product}",
    ev_donation: "{who} donated {amount}", ev_match: "{who} added {amount}",
    ev_milestone: "Milestone: {n} {unit}!", ev_pinned: "Featured: {product}", ev_flash_deal: "Flash deal: {product} {price}",
    ev_sold_out: "{product} sold out", ev_refund: "Refund of {amount}",
    my_points: "My energy points", redeem: "Turn into a donation", points_expire: "{n} points expire {when}",
    energy_units: "Energy turned into {n} {unit}", energy_amount: "Energy turned into {amount}",
    ev_energy: "{who} turned {points} energy points into {amount}", no_pool: "No energy sponsor yet",
    redeemed: "Thank you! {points} points became {amount}",
    someone: "Someone", anonymous: "Anonymous", host_console: "Host console", go_live: "Go live",
    end_session: "End session", pin: "Pin", start_deal: "Start flash deal", add_listing: "Add product",
    product: "Product", price: "Price", stock: "Stock", pledge: "Pledge", pledge_kind: "Pledge kind",
    pledge_percent: "Percent (%)", pledge_fixed: "Fixed per unit", max_per_buyer: "Max per buyer",
    countdown_s: "Countdown (seconds)", duration_s: "Duration (seconds)", readout: "Donor messages to read out",
    mark_read: "Read", moderation: "Moderation", delete: "Delete", mute: "Mute",
    not_host: "Only this session's host can open its console.", status: "Status",
    units_sold: "Units sold", pledged: "Pledged", fees: "Fees", payout_pending: "Owed to you, not yet paid out",
    payout_settled: "Paid into your bank", payout_in_transit: "On its way to your bank", by_product: "By product", by_session: "By session",
    payouts: "Payouts", currency: "Currency", owed: "Owed to you", awaiting_delivery: "Waiting for delivery",
    next_payout: "In the next payout", next_payout_at: "Next payout", min_payout: "minimum",
    payout_account: "Payout account", bank: "Bank", account_number: "Account number", holder_name: "Account holder's name",
    save: "Save", saved: "Saved.", payout_history: "Payouts made", date: "Date",
    to_account: "To account", no_account: "No account yet: add one below to be paid.",
    st_pending: "being prepared", st_submitted: "sent", st_completed: "received", st_failed: "failed, returned to you",
    sales_over_time: "Sales over time", not_farmer: "This page is for farmers. Log in with a farmer account.",
    received: "Received", matched: "Matched", disbursed: "Disbursed", balance: "Balance",
    disbursements: "Disbursements", purpose: "Purpose", evidence: "Evidence", units: "Units",
    record_disbursement: "Record a disbursement", evidence_file: "Evidence file (hashed in your browser)",
    evidence_url: "Evidence link (optional)", campaigns: "Campaigns", donations: "Donations",
    verify_title: "Check a donation receipt", verify_intro: "Paste a receipt (JSON) or open its file. Your own browser checks the Merkle proof and the signature; you do not have to trust the server.",
    open_file: "Open file", check: "Check", public_key: "Log public key (base64)",
    use_server_key: "Fetch from this server", verified: "Verified: this receipt is genuine and in the log.",
    tampered: "TAMPERED: this receipt does not match the log. Do not trust what it says.",
    invalid_receipt: "This is not a valid receipt.", check_leaf: "Entry hash matches its content",
    check_inclusion: "Entry is in the checkpoint's Merkle tree (RFC 9162)",
    check_signature: "Checkpoint Ed25519 signature is valid", check_consistency: "Today's log is consistent with the receipt's checkpoint",
    check_commitment: "Donor commitment matches the salt", trace: "Where the money went",
    no_webcrypto: "This browser offers no WebCrypto (it needs https or localhost).",
    key_changed: "Warning: the server's public key differs from the one you saw before.",
    error: "Something went wrong", loading: "Loading…", not_found: "Not found.", my_receipts: "My receipts",
    receipt: "Receipt", verify_this: "Verify", session: "Session", entry: "Entry #{n}",
    my_orders: "My orders", addresses: "Shipping addresses", add_address: "Add an address",
    address_needed: "Where should it go? Add a shipping address first.", recipient: "Recipient",
    phone: "Phone", street: "Street, number, RT/RW, kelurahan", district: "District (kecamatan)",
    city: "City or regency", province: "Province", postal_code: "Postal code", notes: "Note for the courier (optional)",
    label: "Label (Home, Office…)", make_default: "Make default", default_address: "Default", remove: "Remove",
    shipping: "Shipping", incl_shipping: "incl. shipping {fee}", free_shipping: "Free shipping",
    my_shipments: "My parcels", no_shipments: "No parcels yet.", no_orders: "No orders yet.",
    received_btn: "I received it", tracking: "{courier} tracking {number}", completes_at: "Completes by itself {when}",
    sh_packing: "Being packed", sh_packed: "Packed", sh_shipped: "Shipped", sh_delivered: "Delivered",
    sh_completed: "Completed", sh_failed: "Not delivered, refunded", sh_cancelled: "Cancelled",
    os_reserved: "Awaiting payment", os_paid: "Paid", os_settled: "Processing", os_completed: "Completed",
    os_expired: "Expired", os_cancelled: "Cancelled", os_refunded: "Refunded",
    packing_list: "Packing list", print: "Print", download_csv: "Download CSV", boxes: "Parcels",
    to_pack: "To pack", mark_packed: "Packed", mark_shipped: "Ship",
    mark_delivered: "Delivered", mark_failed: "Not delivered", courier: "Courier", tracking_number: "Tracking number",
    fail_reason: "Reason (e.g. refused at the door)", all_boxes: "All parcels", shipping_rates: "Shipping rates",
    rate_flat: "Flat fee per parcel", rate_zone: "By zone: base + per kg", base_fee: "Base fee",
    per_kg_fee: "Per kg", zone_any: "Other zones", weight: "Weight",
    zone_sumatera: "Sumatra", zone_jawa: "Java", zone_bali_nusa_tenggara: "Bali & Nusa Tenggara",
    zone_kalimantan: "Kalimantan", zone_sulawesi: "Sulawesi", zone_maluku_papua: "Maluku & Papua",
  },
};

export const LANGS = { id: "Bahasa", en: "English" };

function initialLang() {
  const saved = localStorage.getItem("panen.lang");
  if (saved && DICT[saved]) return saved;
  return (navigator.languages || [navigator.language]).some((l) => l && l.startsWith("id")) ? "id" : "en";
}

export let lang = initialLang();

export function locale() {
  return lang === "id" ? "id-ID" : "en-US";
}

export function t(key, vars) {
  let s = DICT[lang][key] ?? DICT.en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// Fill every [data-i18n] element's text (and [data-i18n-placeholder]) in the document.
export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
}

const listeners = [];
export function onLangChange(fn) { listeners.push(fn); }

export function setLang(next) {
  if (!DICT[next]) return;
  lang = next;
  localStorage.setItem("panen.lang", next);
  applyI18n();
  for (const fn of listeners) fn();
}
