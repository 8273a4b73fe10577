"""Money as an integer count of a currency's minor unit, and exact allocation.

No float ever touches an amount: allocation works on integer weights (basis points or
any other integers) with the largest-remainder method, so the parts always add up to the
whole and each part is within one minor unit of its exact share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Minor-unit exponents of the currencies we accept. IDR is kept in whole rupiah: sen
# have not circulated for decades and no payment provider asks for them.
CURRENCIES: dict[str, int] = {"IDR": 0, "CNY": 2, "USD": 2, "SGD": 2, "MYR": 2, "JPY": 0}

# The largest amount of one movement we accept, in minor units (10^13: Rp 10 trillion).
MAX_AMOUNT = 10**13


class MoneyError(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; a True amount is always a bug.
        if type(self.amount) is not int:
            raise MoneyError(f"amount must be an int of minor units, got {type(self.amount)}")
        if self.currency not in CURRENCIES:
            raise MoneyError(f"unsupported currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise MoneyError("money can only be multiplied by an int")
        return Money(self.amount * factor, self.currency)

    def bps(self, basis_points: int) -> Money:
        """`basis_points`/10000 of this amount, rounded half up to the minor unit."""
        if type(basis_points) is not int:
            raise MoneyError("basis points must be an int")
        q, r = divmod(self.amount * basis_points, 10_000)
        return Money(q + (1 if 2 * r >= 10_000 else 0), self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        return [Money(a, self.currency) for a in allocate(self.amount, weights)]

    def to_json(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` by the largest-remainder method.

    Each part gets the floor of its exact share; the units left over go one each to the
    parts with the largest remainders. Ties go to the earlier weight, so callers list the
    parts in priority order (charity, then farmer, then platform).
    """
    if type(total) is not int or any(type(w) is not int for w in weights):
        raise MoneyError("allocate takes integers only")
    if not weights:
        raise MoneyError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise MoneyError("weights must not be negative")
    wsum = sum(weights)
    if wsum == 0:
        raise MoneyError("weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    # Every exact share has the denominator `wsum`: its floor and its remainder are one
    # integer division, and remainders compare as the shares' fractional parts do.
    shares = [divmod(magnitude * w, wsum) for w in weights]
    parts = [whole for whole, _ in shares]
    left = magnitude - sum(parts)
    # Rank by remainder, largest first; stable on index so ties go to the earlier part.
    order = sorted(range(len(weights)), key=lambda i: -shares[i][1])
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]


def minor_unit_exponent(currency: str) -> int:
    try:
        return CURRENCIES[currency]
    except KeyError as exc:
        raise MoneyError(f"unsupported currency {currency!r}") from exc
