"""Our ids (core/ids.py): time-ordered, and they tell when they were made."""

from __future__ import annotations

import time

from core.ids import made_ms, new_id


def test_an_id_tells_when_it_was_made_and_a_foreign_string_tells_nothing():
    before = time.time_ns() // 1_000_000
    made = made_ms(new_id("ord"))
    assert made is not None and before <= made <= time.time_ns() // 1_000_000
    assert made_ms(new_id("ord", at_ms=1_700_000_000_123)) == 1_700_000_000_123
    assert new_id("ord", at_ms=1) < new_id("ord", at_ms=2)  # sortable by that time
    for foreign in ("", "ord_", "ord_short", "ord_" + "u" * 26, "ord_" + "!" * 26):
        assert made_ms(foreign) is None


def test_a_string_of_our_alphabet_but_not_ours_gives_a_time_not_an_error():
    # Redis fields are only ever our ids; anything else must not break a sweep.
    assert isinstance(made_ms("x" * 26), int)
