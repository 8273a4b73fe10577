"""Indonesia's provinces, the zones a farmer prices shipping by, and the fee itself.

A destination zone is the island group of the address's province: couriers (JNE, J&T,
SiCepat) price by it, and a farmer in Garut thinks in "Jawa" and "luar Jawa", not in 514
regencies. The fee of a parcel is `base + per_kg × kg`, kg rounded up with at least one,
as couriers charge; a flat fee is a zone `*` rate with no per-kg part.

`order_fee` here and `fee_sql` in `commerce/orders/writer.py` are the same function; a
test holds them to each other.
"""

from __future__ import annotations

import re

ZONES = ("sumatera", "jawa", "bali_nusa_tenggara", "kalimantan", "sulawesi", "maluku_papua")
ANY_ZONE = "*"  # a rate for every zone the farmer has not priced on its own

PROVINCES: dict[str, str] = {
    "Aceh": "sumatera",
    "Sumatera Utara": "sumatera",
    "Sumatera Barat": "sumatera",
    "Riau": "sumatera",
    "Kepulauan Riau": "sumatera",
    "Jambi": "sumatera",
    "Bengkulu": "sumatera",
    "Sumatera Selatan": "sumatera",
    "Kepulauan Bangka Belitung": "sumatera",
    "Lampung": "sumatera",
    "Banten": "jawa",
    "DKI Jakarta": "jawa",
    "Jawa Barat": "jawa",
    "Jawa Tengah": "jawa",
    "DI Yogyakarta": "jawa",
    "Jawa Timur": "jawa",
    "Bali": "bali_nusa_tenggara",
    "Nusa Tenggara Barat": "bali_nusa_tenggara",
    "Nusa Tenggara Timur": "bali_nusa_tenggara",
    "Kalimantan Barat": "kalimantan",
    "Kalimantan Tengah": "kalimantan",
    "Kalimantan Selatan": "kalimantan",
    "Kalimantan Timur": "kalimantan",
    "Kalimantan Utara": "kalimantan",
    "Sulawesi Utara": "sulawesi",
    "Gorontalo": "sulawesi",
    "Sulawesi Tengah": "sulawesi",
    "Sulawesi Barat": "sulawesi",
    "Sulawesi Selatan": "sulawesi",
    "Sulawesi Tenggara": "sulawesi",
    "Maluku": "maluku_papua",
    "Maluku Utara": "maluku_papua",
    "Papua": "maluku_papua",
    "Papua Barat": "maluku_papua",
    "Papua Barat Daya": "maluku_papua",
    "Papua Selatan": "maluku_papua",
    "Papua Tengah": "maluku_papua",
    "Papua Pegunungan": "maluku_papua",
}

# How people write some of them ("Jakarta", "Yogyakarta", "Jabar", "Babel" …).
_ALIASES = {
    "jakarta": "DKI Jakarta",
    "dki": "DKI Jakarta",
    "yogyakarta": "DI Yogyakarta",
    "diy": "DI Yogyakarta",
    "jogja": "DI Yogyakarta",
    "jabar": "Jawa Barat",
    "jateng": "Jawa Tengah",
    "jatim": "Jawa Timur",
    "sumut": "Sumatera Utara",
    "sumbar": "Sumatera Barat",
    "sumsel": "Sumatera Selatan",
    "kepri": "Kepulauan Riau",
    "babel": "Kepulauan Bangka Belitung",
    "bangka belitung": "Kepulauan Bangka Belitung",
    "ntb": "Nusa Tenggara Barat",
    "ntt": "Nusa Tenggara Timur",
    "nanggroe aceh darussalam": "Aceh",
}
_BY_KEY = {name.lower(): name for name in PROVINCES} | _ALIASES


def province(value: str) -> str | None:
    """The province's name as it is written officially, or None if it is none of the 38."""
    key = " ".join(value.replace("_", " ").split()).lower()
    key = key.removeprefix("provinsi ")
    return _BY_KEY.get(key)


def zone_of(province_name: str) -> str:
    return PROVINCES[province_name]


# A mobile or landline number in Indonesia: +62, 62 or 0, then 8-13 digits (not 0 first).
_PHONE = re.compile(r"^(?:\+62|62|0)([1-9][0-9]{7,12})$")
POSTAL_CODE = re.compile(r"^[1-9][0-9]{4}$")


def phone(value: str) -> str | None:
    """The number as +62…, or None. Spaces, dots, dashes and brackets are ignored."""
    digits = re.sub(r"[\s.()\-]", "", value)
    m = _PHONE.match(digits)
    return f"+62{m.group(1)}" if m else None


def kilograms(weight_g: int) -> int:
    """What a courier charges for: whole kilograms, rounded up, at least one."""
    return max(1, -(-weight_g // 1000))


def fee(base: int, per_kg: int, weight_g: int) -> int:
    """A parcel's fee; nothing to ship costs nothing."""
    return 0 if weight_g <= 0 else base + per_kg * kilograms(weight_g)


def order_fee(base: int, per_kg: int, weight_g: int, box_paid: bool) -> int:
    """What one order pays to ship: its own kilograms, and the base unless its box already
    holds an order that was paid (which paid the base). Never less than its share of the
    box: kilograms are rounded up per order, and the base is waived only against money
    that came in, so neither a cancelled order nor two orders priced at the same moment
    can leave a box short."""
    if weight_g <= 0:
        return 0
    return per_kg * kilograms(weight_g) + (0 if box_paid else base)
