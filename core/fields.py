"""Field types shared by request bodies: bounded text, amounts, currencies, ids, URLs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from core.money import MAX_AMOUNT

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
Currency = Literal["IDR", "CNY", "USD", "SGD", "MYR", "JPY"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]
Url = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\s<>\"']+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
Bps = Annotated[int, Field(ge=0, le=10_000)]

# An `Idempotency-Key` (header or socket frame): what the orders, donations and
# redemptions tables' key columns hold, String(100).
IDEMPOTENCY_KEY_MAX = 100
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=r"^[\x21-\x7e]+$"),
]


def is_idempotency_key(value: object) -> bool:
    """1-100 printable ASCII characters, no spaces."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= IDEMPOTENCY_KEY_MAX
        and all(0x21 <= ord(c) <= 0x7E for c in value)
    )
