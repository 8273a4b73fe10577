from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import Money, MoneyError, allocate


def test_fifteen_split_80_8_12_percent_gives_the_leftover_unit_to_the_largest_remainder():
    # exact shares: 12, 1.2, 1.8 -> floors 12, 1, 1; the one unit left goes to 1.8
    assert allocate(15, [8000, 800, 1200]) == [12, 1, 2]


def test_33333_at_7_5_percent_pledge_rounds_the_charity_share_up():
    # exact: charity 2499.975, rest 30833.025
    assert allocate(33333, [750, 9250]) == [2500, 30833]


def test_ties_go_to_the_charity_then_the_farmer_then_the_platform():
    # charity, farmer, platform with equal weights: 1 unit left, three equal remainders
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(11, [1, 1, 1]) == [4, 4, 3]


def test_a_zero_weight_part_gets_nothing():
    assert allocate(999, [0, 1, 0]) == [0, 999, 0]


def test_negative_totals_split_as_the_mirror_of_positive_ones():
    assert allocate(-15, [8000, 800, 1200]) == [-12, -1, -2]


@pytest.mark.parametrize("bad", [1.5, "15", True])
def test_allocation_refuses_anything_but_integers(bad):
    with pytest.raises(MoneyError):
        allocate(bad, [1, 1])


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(MoneyError):
        Money(10.0, "IDR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "IDR") + Money(1, "CNY")
    with pytest.raises(MoneyError):
        Money(1, "XXX")


def test_basis_points_round_half_up_in_minor_units():
    assert Money(33333, "IDR").bps(750) == Money(2500, "IDR")
    assert Money(1999, "CNY").bps(500) == Money(100, "CNY")  # 99.95 -> 100


@given(
    total=st.integers(min_value=-(10**13), max_value=10**13),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_parts_always_sum_to_the_whole_and_each_is_within_one_unit_of_its_share(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert abs(part - exact) < 1
