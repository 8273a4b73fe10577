"""Field types shared by request bodies: bounded text, amounts, currencies, ids, URLs.

One rule holds for every string a client sends (bodies, socket frames, paths, queries):
no control characters but tab, newline and carriage return. PostgreSQL cannot store NUL,
and nothing we show needs the others.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from core.money import MAX_AMOUNT

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
Currency = Literal["IDR", "CNY", "USD", "SGD", "MYR", "JPY"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]
Url = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\s<>\"']+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160)]
# What a campaign counts in ("Love Package"): shown in a room's goal bar, so short.
UnitName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
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


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character_at(value: Any, path: str = "") -> str | None:
    """Where (a dotted path) the first string of a JSON value holding a control character
    is, or None. Keys count as strings of their own. Walked with a stack of its own, not
    by recursion: a body nested a thousand deep is an answer, not a RecursionError."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if CONTROL.search(node):
                return where or "body"
        elif isinstance(node, dict):
            children = []
            for k, v in node.items():
                if isinstance(k, str) and CONTROL.search(k):
                    return where or "body"
                children.append((v, f"{where}.{k}" if where else str(k)))
            stack.extend(reversed(children))  # popped in order: the first is found first
        elif isinstance(node, list):
            stack.extend(
                (v, f"{where}.{i}" if where else str(i)) for i, v in reversed(list(enumerate(node)))
            )
    return None
