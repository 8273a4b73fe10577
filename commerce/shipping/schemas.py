"""Request bodies and JSON of addresses, shipping rates, quotes and shipments."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from commerce.shipping import zones
from commerce.shipping.models import Address, ShipmentStatusChange
from core.clock import rfc3339
from core.fields import Currency
from core.http import Body
from core.shapes import NotRequired, TypedDict, closed

_ONE_LINE = "\r\n\t\u2028\u2029"


def _one_line(value: str) -> str:
    """Printed on a label and written to a CSV a line per box: a line break would forge one."""
    if any(c in value for c in _ONE_LINE):
        raise ValueError("one line")
    return value


# One line of text, trimmed; each field gives its length.
OneLine = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_one_line)
]


class AddressBody(Body):
    """An Indonesian shipping address. Each field is one line: it is printed on a label."""

    label: Annotated[OneLine, Field(max_length=40)] | None = None  # "Rumah", "Kantor"
    recipient: Annotated[OneLine, Field(max_length=120)]
    phone: Annotated[OneLine, Field(max_length=24)]
    street: Annotated[OneLine, Field(max_length=300)]  # street, number, RT/RW, kelurahan
    district: Annotated[OneLine, Field(max_length=120)]  # kecamatan
    city: Annotated[OneLine, Field(max_length=120)]  # kota or kabupaten
    province: Annotated[OneLine, Field(max_length=60)]
    postal_code: Annotated[OneLine, Field(max_length=5)]
    notes: Annotated[OneLine, Field(max_length=200)] | None = None  # for the courier
    is_default: bool = False

    @field_validator("phone")
    @classmethod
    def indonesian_phone(cls, value: str) -> str:
        number = zones.phone(value)
        if number is None:
            raise ValueError("an Indonesian number: +62, 62 or 0, then 8-13 digits")
        return number

    @field_validator("province")
    @classmethod
    def known_province(cls, value: str) -> str:
        name = zones.province(value)
        if name is None:
            raise ValueError("one of Indonesia's 38 provinces, e.g. Jawa Barat")
        return name

    @field_validator("postal_code")
    @classmethod
    def five_digits(cls, value: str) -> str:
        if not zones.POSTAL_CODE.match(value):
            raise ValueError("five digits (kode pos)")
        return value


class RateBody(Body):
    zone: Literal[
        "*", "sumatera", "jawa", "bali_nusa_tenggara", "kalimantan", "sulawesi", "maluku_papua"
    ]
    # Bounded so that the heaviest order (1,000 units of 1,000 kg) stays a fee a bigint
    # holds and a payment can carry: at most 10^8 + 10^7 × 10^6 kg.
    base_fee: Annotated[int, Field(ge=0, le=10**8)]
    per_kg_fee: Annotated[int, Field(ge=0, le=10**7)] = 0


class SetRates(Body):
    """A farmer's whole price list in one currency (it replaces the last). A flat fee is one
    `*` rate with no per-kg fee; no rates at all is free shipping."""

    currency: Currency = "IDR"
    rates: Annotated[list[RateBody], Field(max_length=7)]

    @field_validator("rates")
    @classmethod
    def one_per_zone(cls, value: list[RateBody]) -> list[RateBody]:
        seen = [r.zone for r in value]
        if len(seen) != len(set(seen)):
            raise ValueError("one rate per zone")
        return value


# A courier's tracking number: letters, digits and dashes (JNE, J&T, SiCepat all are).
TrackingNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=60, pattern=r"^[A-Za-z0-9\-]{4,60}$")
]
ShipmentMove = Literal["packed", "shipped", "delivered", "failed", "completed"]


class MoveShipment(Body):
    status: ShipmentMove
    courier: Annotated[OneLine, Field(max_length=40)] | None = None  # "JNE", "J&T", "SiCepat"
    tracking_number: TrackingNumber | None = None
    reason: Annotated[OneLine, Field(max_length=500)] | None = None  # why it failed


@closed
class AddressOut(TypedDict):
    id: str
    label: str | None
    recipient: str
    phone: str
    street: str
    district: str
    city: str
    province: str
    postal_code: str
    notes: str | None
    zone: str
    is_default: bool
    created_at: str | None


@closed
class AddressReply(TypedDict):
    address: AddressOut


@closed
class AddressList(TypedDict):
    addresses: list[AddressOut]


@closed
class RateOut(TypedDict):
    zone: str
    base_fee: int
    per_kg_fee: int


@closed
class RatesOut(TypedDict):
    farmer_id: str
    currency: str
    rates: list[RateOut]
    free: bool  # no rate in this currency: the farmer ships for free
    zones: list[str]


@closed
class QuoteOut(TypedDict):
    listing_id: str
    quantity: int
    address_id: str
    address_label: str  # "recipient, city": where it would go, for a confirmation sheet
    zone: str
    weight_g: int
    shippable: bool
    shipping_fee: int  # what this order would add to its box's fee now
    total: int
    amount: int  # total + shipping_fee: what the buyer would pay
    currency: str


@closed
class ShipmentItem(TypedDict):
    order_id: str
    listing_id: str
    product_name: str
    unit: str
    quantity: int
    weight_g: int
    shipping_fee: int
    total: int
    status: str


@closed
class ShipmentChange(TypedDict):
    status: str
    at: str | None
    note: str | None


@closed
class ShipmentOut(TypedDict):
    id: str
    session_id: str
    session_title: str
    buyer_id: str
    buyer_name: str
    farmer_id: str
    farmer_name: str
    status: str
    recipient: str
    phone: str
    street: str
    district: str
    city: str
    province: str
    postal_code: str
    notes: str | None
    courier: str | None
    tracking_number: str | None
    failure_reason: str | None
    weight_g: int
    shipping_fee: int
    goods_total: int
    currency: str | None
    items: list[ShipmentItem]
    created_at: str | None
    packed_at: str | None
    shipped_at: str | None
    delivered_at: str | None
    closed_at: str | None
    completes_at: str | None  # once delivered: when it completes unless the buyer says first
    history: NotRequired[list[ShipmentChange]]


@closed
class ShipmentReply(TypedDict):
    shipment: ShipmentOut


@closed
class ShipmentPage(TypedDict):
    shipments: list[ShipmentOut]
    next_before: str | None


@closed
class PackedProduct(TypedDict):
    product_name: str
    unit: str
    quantity: int


@closed
class PackingList(TypedDict):
    farmer_id: str
    session_id: str
    session_title: str
    boxes: int
    units: int
    weight_g: int
    by_product: list[PackedProduct]
    shipments: list[ShipmentOut]


def address_json(a: Address) -> AddressOut:
    return {
        "id": a.id,
        "label": a.label,
        "recipient": a.recipient,
        "phone": a.phone,
        "street": a.street,
        "district": a.district,
        "city": a.city,
        "province": a.province,
        "postal_code": a.postal_code,
        "notes": a.notes,
        "zone": a.zone,
        "is_default": a.is_default,
        "created_at": rfc3339(a.created_at),
    }


def history_json(rows: list[ShipmentStatusChange]) -> list[ShipmentChange]:
    return [{"status": h.status, "at": rfc3339(h.at), "note": h.note} for h in rows]


ADDRESS_FIELDS = (
    "recipient",
    "phone",
    "street",
    "district",
    "city",
    "province",
    "postal_code",
    "notes",
)
