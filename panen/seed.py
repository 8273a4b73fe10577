"""A believable demo, created through the public HTTP API as a client would."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

DEMO_PASSWORD = "panen-demo"  # noqa: S105 - printed for the demo's users on purpose


class Client:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: {err.code} {err.read().decode()}") from err

    def login(self, handle: str) -> Client:
        out = self.call("POST", "/api/auth/login", {"handle": handle, "password": DEMO_PASSWORD})
        return Client(self.base, out["token"])


# Where demo and simulated buyers live (made-up people at real-looking addresses).
ADDRESSES = [
    (
        "Andi Pratama",
        "Jl. Cihampelas No. 12, RT 02/RW 05",
        "Coblong",
        "Kota Bandung",
        "Jawa Barat",
        "40131",
    ),
    (
        "Dewi Lestari",
        "Jl. Kaliurang Km 5 No. 8",
        "Depok",
        "Kabupaten Sleman",
        "DI Yogyakarta",
        "55281",
    ),
    (
        "Rudi Hartono",
        "Jl. Gatot Subroto No. 45",
        "Medan Petisah",
        "Kota Medan",
        "Sumatera Utara",
        "20112",
    ),
    ("Made Wirawan", "Jl. Raya Ubud No. 3", "Ubud", "Kabupaten Gianyar", "Bali", "80571"),
    (
        "Sri Wahyuni",
        "Jl. Ahmad Yani No. 101",
        "Banjarmasin Tengah",
        "Kota Banjarmasin",
        "Kalimantan Selatan",
        "70111",
    ),
    (
        "Yusuf Maulana",
        "Jl. Sam Ratulangi No. 9",
        "Wenang",
        "Kota Manado",
        "Sulawesi Utara",
        "95111",
    ),
]


def sample_address(n: int) -> dict[str, Any]:
    """The n-th demo address, as `POST /api/me/addresses` takes it."""
    recipient, street, district, city, province, postal = ADDRESSES[n % len(ADDRESSES)]
    return {
        "recipient": recipient,
        "phone": f"08{1_200_000_000 + n * 7919 % 800_000_000}",
        "street": street,
        "district": district,
        "city": city,
        "province": province,
        "postal_code": postal,
    }


# How each farmer prices shipping: by weight, cheaper within Java; or one flat fee.
SHIPPING = {
    "pak_budi": [
        {"zone": "jawa", "base_fee": 9_000, "per_kg_fee": 4_000},
        {"zone": "*", "base_fee": 25_000, "per_kg_fee": 11_000},
    ],
    "ibu_siti": [{"zone": "*", "base_fee": 15_000, "per_kg_fee": 0}],
}

FARMERS = [
    (
        "pak_budi",
        "Pak Budi Santoso",
        "Kelompok Tani Sumber Rejeki",
        "Malang, Jawa Timur",
        [
            (
                "Beras Pandan Wangi",
                "5 kg",
                85_000,
                "Beras pulen dan wangi dari sawah Malang.",
                10,
                0,
            ),
            ("Mangga Harum Manis", "1 kg", 35_000, "Mangga arumanis matang pohon.", 0, 2_000),
        ],
    ),
    (
        "ibu_siti",
        "Ibu Siti Rahayu",
        "Kebun Kopi Siti",
        "Garut, Jawa Barat",
        [
            (
                "Kopi Arabika Garut",
                "250 g",
                95_000,
                "Biji kopi sangrai sedang, petik merah.",
                1_000,
                0,
            ),
            ("Cabai Rawit Merah", "500 g", 28_000, "Cabai rawit segar, pedas mantap.", 500, 0),
        ],
    ),
]


# One unit, packed, in grams.
WEIGHTS = {
    "Beras Pandan Wangi": 5_100,
    "Mangga Harum Manis": 1_100,
    "Kopi Arabika Garut": 300,
    "Cabai Rawit Merah": 550,
}


# A drawn picture per product for the demo (a field under a sky, each in its own colours):
# real photos would be the farmers' own, uploaded the same way.
PALETTE = [
    ((214, 190, 120), (250, 236, 190)),
    ((60, 110, 50), (200, 225, 160)),
    ((170, 40, 40), (250, 210, 190)),
    ((90, 60, 40), (230, 200, 160)),
    ((240, 170, 30), (255, 240, 190)),
    ((120, 80, 150), (230, 210, 240)),
]


def picture(n: int) -> bytes:
    from PIL import Image, ImageDraw  # only the demo draws

    ground, sky = PALETTE[n % len(PALETTE)]
    img = Image.new("RGB", (640, 640), sky)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 400, 640, 640), fill=ground)
    draw.ellipse((220, 180, 420, 380), fill=tuple(max(0, c - 40) for c in ground))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def seed(base: str, admin: Client) -> dict[str, Any]:
    """Create users, farmers, products, a charity with a campaign, and a live session."""
    users = {}
    for handle, display, roles in [
        ("host_rina", "Rina (host)", ["host"]),
        ("yayasan_pelita", "Yayasan Pelita", ["viewer"]),
        ("viewer_andi", "Andi", ["viewer"]),
        ("sponsor_bank_desa", "Bank Desa Sejahtera", ["sponsor"]),
        *[(h, d, ["viewer"]) for h, d, *_ in FARMERS],
    ]:
        users[handle] = admin.call(
            "POST",
            "/api/admin/users",
            {
                "handle": handle,
                "password": DEMO_PASSWORD,
                "display_name": display,
                "roles": roles,
            },
        )["user"]

    Client(base).login("viewer_andi").call("POST", "/api/me/addresses", sample_address(0))
    products: list[tuple[dict[str, Any], int, int]] = []
    for n, (handle, display, farm, region, items) in enumerate(FARMERS, 1):
        farmer = admin.call(
            "POST", "/api/farmers", {"user_id": users[handle]["id"], "name": farm, "region": region}
        )
        as_farmer = Client(base).login(handle)
        # Where the farmer is paid (a made-up account at the emulated bank).
        as_farmer.call(
            "POST",
            f"/api/farmers/{farmer['id']}/payout-account",
            {
                "bank": "bri",
                "account_number": f"00{n:03d}1234567",
                "holder_name": display,
            },
        )
        as_farmer.call(
            "PUT",
            f"/api/farmers/{farmer['id']}/shipping",
            {"currency": "IDR", "rates": SHIPPING[handle]},
        )
        for name, unit, price, description, pledge_bps, pledge_per_unit in items:
            product = as_farmer.call(
                "POST",
                "/api/products",
                {
                    "farmer_id": farmer["id"],
                    "name": name,
                    "unit": unit,
                    "unit_price": price,
                    "currency": "IDR",
                    "description": description,
                    "origin": region,
                    "weight_g": WEIGHTS[name],
                },
            )
            product = as_farmer.call(
                "PUT",
                f"/api/products/{product['id']}/image",
                raw=picture(len(products)),
                content_type="image/png",
            )
            products.append((product, pledge_bps, pledge_per_unit))

    charity = admin.call(
        "POST",
        "/api/charities",
        {
            "name": "Yayasan Pelita Sekolah",
            "description": "Perlengkapan sekolah untuk anak-anak desa. "
            "School supplies for village children.",
            "admin_user_id": users["yayasan_pelita"]["id"],
        },
    )
    as_charity = Client(base).login("yayasan_pelita")
    campaign = as_charity.call(
        "POST",
        f"/api/charities/{charity['id']}/campaigns",
        {
            "title": "Love Package untuk 500 murid",
            "unit_name": "Love Package",
            "unit_cost": 150_000,
            "goal_units": 500,
            "currency": "IDR",
        },
    )

    host = Client(base).login("host_rina")
    session = host.call(
        "POST",
        "/api/sessions",
        {
            "title": "Panen Raya: hasil tani Malang & Garut",
            "charity_id": charity["id"],
            "campaign_id": campaign["id"],
            "currency": "IDR",
        },
    )
    for product, pledge_bps, pledge_per_unit in products:
        host.call(
            "POST",
            f"/api/sessions/{session['id']}/listings",
            {
                "product_id": product["id"],
                "price": product["unit_price"],
                "stock": 200,
                "pledge_bps": pledge_bps,
                "pledge_per_unit": pledge_per_unit,
                "max_per_buyer": 5,
            },
        )
    host.call("POST", f"/api/sessions/{session['id']}/start")
    host.call(
        "PUT",
        f"/api/sessions/{session['id']}/chat-rules",
        {
            "pinned_message": "Selamat datang! Setiap pembelian ikut mendanai Love Package "
            "untuk murid desa.",
            "blocked_words": ["judi", "slot gacor"],
        },
    )
    # Next week's show, so the host's list has what is coming as well as what is live.
    host.call(
        "POST",
        "/api/sessions",
        {
            "title": "Panen Mangga Indramayu",
            "charity_id": charity["id"],
            "campaign_id": campaign["id"],
            "currency": "IDR",
            "scheduled_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(timespec="seconds"),
        },
    )
    listings = host.call("GET", f"/api/sessions/{session['id']}")["listings"]
    host.call("POST", f"/api/sessions/{session['id']}/pin", {"listing_id": listings[0]["id"]})

    # A sponsor doubles half of every gift and pledge, and turns viewers' energy into
    # Love Packages ("100 points = one Love Package").
    sponsor = users["sponsor_bank_desa"]
    as_sponsor = Client(base).login("sponsor_bank_desa")
    as_sponsor.call(
        "POST",
        f"/api/sessions/{session['id']}/matches",
        {
            "sponsor_name": sponsor["display_name"],
            "ratio_bps": 5_000,
            "cap": 10_000_000,
        },
    )
    as_sponsor.call(
        "POST",
        "/api/pools",
        {
            "campaign_id": campaign["id"],
            "session_id": session["id"],
            "sponsor_name": sponsor["display_name"],
            "rate_points": 100,
            "cap": 15_000_000,
        },
    )
    return {"session": session, "charity": charity, "campaign": campaign}
