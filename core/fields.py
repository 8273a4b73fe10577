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
