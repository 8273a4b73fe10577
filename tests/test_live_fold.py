"""How a room's events fold into its totals (pure: no servers)."""

from __future__ import annotations

from typing import Any

from commerce.orders.events import OrderPaid, Refund, Sale
from commerce.stock.events import Stock
from core.db import Snapshot
from donations.charity.events import Match
from donations.gifts.events import Donation
from live import rooms
from live.history import seq_of
from live.protocol import FrameError, parse


def _room() -> rooms.State:
    return {
        "totals": {
            "viewers": 0,
            "likes": 0,
            "orders": 0,
            "units_sold": {},
            "gross": 0,
            "charity": {"pledged": 0, "donated": 0, "matched": 0, "total": 0},
            "goal": {
                "unit_name": "Love Package",
                "unit_cost": 1000,
                "funded_units": 0,
                "goal_units": 10,
            },
            "top_donors": [],
            "pinned": {"id": "lst_1"},
            "flash_deal": None,
        },
        "donors": {},
        "stock": {"lst_1": 9},
        "listings": {},
    }


def sale(kind: type[Sale], order_id: str, **kw: Any) -> dict[str, Any]:
    """An order's event as the settle and refund flows send it (its one definition)."""
    event = kind(
        order_id=order_id,
        session_id="s",
        listing_id="lst_1",
        quantity=2,
        gross=2000,
        pledge=500,
        currency="IDR",
        at="2026-12-01T10:00:00Z",
    )
    return {**event.to_json(), **kw}


def paid(order_id: str, **kw: Any) -> dict[str, Any]:
    return sale(OrderPaid, order_id, **kw)


def gift(name: str, amount: int) -> dict[str, Any]:
    return Donation(
        donation_id=f"don_{name}_{amount}",
        amount=amount,
        currency="IDR",
        display_name=name,
        charity_id="chr_1",
        entry_index=0,
        at=None,
        session_id="s",
    ).to_json()


def matched(amount: int) -> dict[str, Any]:
    return Match(
        session_id="s",
        match_id="mch_1",
        amount=amount,
        currency="IDR",
        sponsor_name="Bank",
        remaining=0,
        at=None,
    ).to_json()


def test_orders_donations_and_matches_sum_into_the_charity_total_and_the_goal() -> None:
    state = _room()
    for event in (
        paid("o1"),
        paid("o2"),
        gift("Sari", 1200),
        gift("Budi", 300),
        gift("Sari", 100),
        gift("Anonymous", 5000),  # many givers who chose not to be named: not one to rank
        matched(700),
        Stock(listing_id="lst_1", remaining=5).to_json(),
    ):
        rooms.fold(state, "session:s", event)
    rooms.finish(state)
    t = state["totals"]
    assert (t["orders"], t["gross"], t["units_sold"]) == (2, 4000, {"lst_1": 4})
    assert t["charity"] == {"pledged": 1000, "donated": 6600, "matched": 700, "total": 8300}
    assert t["goal"]["funded_units"] == 8
    assert t["top_donors"] == [
        {"display_name": "Sari", "amount": 1300},
        {"display_name": "Budi", "amount": 300},
    ]
    assert t["pinned"]["remaining"] == 5


def test_an_order_event_delivered_twice_counts_once_and_a_refund_takes_it_back() -> None:
    state = _room()
    seen: dict[str, None] = {}
    rooms.fold(state, "session:s", paid("o1"), seen=seen)
    rooms.fold(state, "session:s", paid("o1"), seen=seen)
    assert state["totals"]["orders"] == 1
    rooms.fold(state, "session:s", sale(Refund, "o1"), seen=seen)
    rooms.finish(state)
    assert state["totals"]["orders"] == 0 and state["totals"]["charity"]["total"] == 0


def test_events_of_transactions_a_cold_rebuild_read_change_no_sums_and_the_rest_count() -> None:
    # The rebuild's read saw transactions below 100 except 97 (still running then).
    read = Snapshot.parse("95:100:97")
    state = {**_room(), rooms.COUNTED_IN: str(read)}
    already = rooms.counted_in(state)
    assert already == read
    for order_id, xid in (("o1", 90), ("o2", 96), ("o3", 97), ("o4", 100), ("o5", 250)):
        rooms.fold(state, "session:s", paid(order_id, _xid=xid), already=already)
    assert state["totals"]["orders"] == 3  # 97 committed after the read, 100 and 250 began after
    rooms.fold(state, "session:s", paid("o6"), already=already)  # not from the database
    assert state["totals"]["orders"] == 4


def test_a_snapshot_sees_exactly_what_postgresql_says_it_does() -> None:
    snap = Snapshot.parse("10:20:12,15")
    assert [x for x in range(5, 25) if snap.sees(x)] == [
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        13,
        14,
        16,
        17,
        18,
        19,
    ]
    assert str(snap) == "10:20:12,15" and Snapshot.parse("7:7:") == Snapshot(7, 7, frozenset())


def test_the_writing_transaction_is_not_shown_to_viewers() -> None:
    shown = rooms.public_event(paid("o1", _xid=42))
    assert shown is not None and "_xid" not in shown and "session_id" not in shown


def test_stock_events_are_folded_but_not_listed_to_viewers() -> None:
    assert rooms.public_event(Stock(listing_id="x", remaining=1).to_json()) is None
    shown = paid("o1")
    del shown["session_id"]
    assert rooms.public_event(paid("o1")) == shown


def test_a_frames_seq_is_read_without_parsing_it() -> None:
    assert seq_of(b'{"type":"ticker","topic":"session:a","seq":1712345678901,"totals":{}}') == (
        1712345678901
    )


def test_frames_are_validated_with_a_code_and_the_offending_field() -> None:
    for raw, code, field in (
        ("{", "malformed_json", "frame"),
        ('{"type":"like","id":true}', "invalid_field", "id"),
        ('{"type":"nope"}', "unknown_type", "type"),
    ):
        try:
            parse(raw)
        except FrameError as err:
            assert (err.code, err.field) == (code, field)
        else:
            raise AssertionError(raw)
    frame = parse('{"type":"like","topic":"session:a","count":true}')
    try:
        frame.int_field("count", 1, 50)
    except FrameError as err:
        assert err.field == "count"


def test_a_malformed_event_is_dropped_and_changes_nothing() -> None:
    state = _room()
    rooms.fold(state, "session:s", {**paid("o1"), "quantity": "2"})
    rooms.fold(state, "session:s", {"type": "order_paid", "order_id": "o2"})
    assert state["totals"]["orders"] == 0 and state["totals"]["units_sold"] == {}


def test_a_farmers_payout_numbers_move_with_their_payouts_and_a_redelivery_counts_once() -> None:
    from commerce.payouts.events import moved
    from commerce.payouts.models import Payout

    state: rooms.State = {"totals": {"payout_pending": 90_000, "payout_settled": 0}}
    seen: dict[str, None] = {}
    payout = Payout(id="pyo_1", farmer_id="frm_1", amount=90_000, currency="IDR")

    def deliver(status: str) -> None:
        payout.status = status
        _, event = moved(payout)
        rooms.fold(state, "farmer:frm_1", event.to_json(), seen=seen)

    deliver("pending")
    deliver("pending")  # the relay delivers at least once
    assert state["totals"] == {
        "payout_pending": 0,
        "payout_in_transit": 90_000,
        "payout_settled": 0,
    }
    deliver("completed")
    assert state["totals"]["payout_in_transit"] == 0
    assert state["totals"]["payout_settled"] == 90_000


def test_a_session_that_ends_tells_its_room_through_the_totals() -> None:
    from commerce.sessions.events import SessionMoved

    state = _room()
    rooms.fold(state, "session:s", SessionMoved(status="ended", at=None).to_json())
    rooms.finish(state)
    assert state["totals"]["status"] == "ended"


def test_a_room_remembers_its_latest_feed_events_and_forgets_a_hidden_message() -> None:
    state = _room()
    gifts = [{**gift(f"g{i}", 100 + i), "message": "halo"} for i in range(rooms.RECENT_KEPT + 5)]
    rooms.remember(state, [*gifts, {"type": "stock", "listing_id": "l", "remaining": 1}])
    recent = state["recent"]
    assert [e["donation_id"] for e in recent] == [g["donation_id"] for g in gifts[-20:]]
    hidden = recent[-1]["donation_id"]
    rooms.remember(state, [{"type": "message_hidden", "donation_id": hidden}])
    assert "message" not in state["recent"][-1] and state["recent"][-2]["message"] == "halo"


def test_a_gift_event_that_comes_after_its_message_was_hidden_shows_no_message() -> None:
    """A gift's event waits for its log entry's index; the host may hide its message in
    that moment. The room remembers what was hidden and strips the late event too."""
    state = _room()
    hidden = {"type": "message_hidden", "donation_id": "don_1"}
    rooms.strip_hidden(state, [hidden])
    late = [
        {"type": "donation", "donation_id": "don_1", "amount": 5, "message": "hi"},
        {"type": "donation", "donation_id": "don_2", "amount": 5, "message": "kept"},
    ]
    rooms.strip_hidden(state, late)
    assert "message" not in late[0] and late[1]["message"] == "kept"
    approved = {"type": "donation_message", "donation_id": "don_1", "message": "hi"}
    rooms.strip_hidden(state, [approved])  # the host approved it again: shown again
    assert approved["message"] == "hi" and "don_1" not in state["hidden"]
    many = [{"type": "message_hidden", "donation_id": f"don_x{i}"} for i in range(500)]
    rooms.strip_hidden(state, many)
    assert len(state["hidden"]) == rooms.HIDDEN_KEPT  # remembered, but bounded


def test_a_busy_frame_lists_the_newest_of_each_kind_counts_the_rest_and_keeps_rare_ones() -> None:
    n = rooms.SHOWN_PER_KIND
    sales = [{"type": "order_paid", "order_id": f"o{i}"} for i in range(n + 25)]
    gifts = [{"type": "donation", "donation_id": f"d{i}"} for i in range(n + 3)]  # all shown
    rare = [{"type": "milestone", "funded_units": i} for i in range(n + 5)]
    hidden = {"type": "message_hidden", "donation_id": "d0"}
    events = [*sales[:20], gifts[0], *rare, hidden, *sales[20:], *gifts[1:]]
    shown, more = rooms.viewable(events)
    assert more == {"order_paid": 25}  # only what was left out, by kind
    assert [e for e in shown if e["type"] == "order_paid"] == sales[-n:]  # the newest
    assert [e for e in shown if e["type"] == "milestone"] == rare  # rare kinds in full
    assert hidden in shown and all(g in shown for g in gifts)
    assert shown == [e for e in events if e in shown]  # in their order
    quiet = sales[:n]
    assert rooms.viewable(quiet) == (quiet, {})  # a quiet frame is left as it is


def test_a_hide_strips_its_gift_in_frame_order_and_twice_hidden_is_undone_by_one_approval() -> None:
    state = _room()
    gift = {"type": "donation", "donation_id": "don_9", "message": "oops"}
    hide = {"type": "message_hidden", "donation_id": "don_9"}
    approve = {"type": "donation_message", "donation_id": "don_9", "message": "oops"}
    rooms.strip_hidden(state, [gift, hide, dict(hide), approve])  # delivered twice
    assert "message" not in gift  # hidden after it came
    assert approve["message"] == "oops"  # approved after the hide: shown
    assert "don_9" not in state["hidden"]
    later = {"type": "donation", "donation_id": "don_9", "message": "oops"}
    rooms.strip_hidden(state, [later])
    assert later["message"] == "oops"
