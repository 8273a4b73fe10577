"""How a sale's money splits between the charity, the farmer and the platform."""

from __future__ import annotations

from dataclasses import dataclass

from core.money import allocate


@dataclass(frozen=True, slots=True)
class Split:
    pledge: int
    farmer: int
    fee: int


def split(total: int, quantity: int, pledge_bps: int, pledge_per_unit: int, fee_bps: int) -> Split:
    """Charity pledge, farmer share and platform fee of a sale; they add up to `total`.

    Each part's exact share (scaled by 10000 to stay in integers) is a weight of the
    largest-remainder allocation, listed charity, farmer, platform so ties favour the
    charity first. The fee yields when pledge and fee together would exceed the total.
    """
    scale = 10_000
    pledge_w = pledge_per_unit * quantity * scale if pledge_per_unit else total * pledge_bps
    pledge_w = min(pledge_w, total * scale)
    fee_w = min(total * fee_bps, total * scale - pledge_w)
    farmer_w = total * scale - pledge_w - fee_w
    if total == 0:
        return Split(0, 0, 0)
    pledge, farmer, fee = allocate(total, [pledge_w, farmer_w, fee_w])
    return Split(pledge=pledge, farmer=farmer, fee=fee)
