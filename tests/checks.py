"""Invariants a test checks against the database: they hold whatever the test did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from commerce.ledger import service as ledger
from core.db import Database
from donations.energy import points


async def assert_ledger_invariants(db: Database) -> None:
    """Every transaction sums to zero; every settled order's sale posts exactly its split
    (farmer + charity + platform = gross) and its postage on a line of its own to the
    farmer, against the buyer's whole payment; refunded ones are reversed to zero."""
    async with db.reader() as s:
        assert await ledger.unbalanced_transactions(s) == []
        orders = (
            await s.execute(
                text(
                    "SELECT o.id, o.status, o.total, o.pledge_amount, o.fee_amount,"
                    " o.farmer_amount, o.farmer_id, o.charity_id, o.shipping_fee FROM orders o"
                )
            )
        ).all()
        postings = (
            await s.execute(
                text(
                    "SELECT t.order_id, t.kind, p.account_code, p.amount FROM ledger_postings p"
                    " JOIN ledger_transactions t ON t.id = p.transaction_id"
                    " WHERE t.order_id IS NOT NULL"
                )
            )
        ).all()
    by_order: dict[str, list[tuple[str, str, int]]] = {}
    for p in postings:
        by_order.setdefault(p.order_id, []).append((p.kind, p.account_code, p.amount))
    for o in orders:
        assert o.pledge_amount + o.fee_amount + o.farmer_amount == o.total
        rows = by_order.get(o.id, [])
        sales = [r for r in rows if r[0] == "sale"]
        refunds = [r for r in rows if r[0] == "refund"]
        if o.status in ("reserved", "paid", "expired", "cancelled"):
            assert sales == [] and refunds == [], o.id
            continue
        assert o.status in ("settled", "completed", "refunded")
        if o.status == "refunded" and not sales:
            continue  # refunded before settlement: the money never moved
        got: dict[str, int] = {}
        for _, code, amount in sales:
            got[code] = got.get(code, 0) + amount
        farmer = f"farmer_payable:{o.farmer_id}"
        assert got.get(farmer, 0) == o.farmer_amount + o.shipping_fee
        assert got.get(f"charity_payable:{o.charity_id}", 0) == o.pledge_amount
        assert got.get("platform_fee", 0) == o.fee_amount
        paid = [a for code, a in got.items() if code.startswith("buyer_clearing:")]
        assert paid == [-(o.total + o.shipping_fee)], o.id
        farmer_lines = sorted(a for _, code, a in sales if code == farmer)
        assert farmer_lines == sorted(a for a in (o.farmer_amount, o.shipping_fee) if a), (
            "the postage is a line of its own"
        )
        if o.status == "refunded":
            assert sum(a for _, _, a in rows) == 0
            assert sorted(a for _, _, a in refunds) == sorted(-a for _, _, a in sales)
        else:
            assert refunds == []


async def outbox_events(db: Database, topic: str) -> list[dict[str, Any]]:
    """Every event the outbox holds for `topic`, in the order they were written."""
    async with db.reader() as s:
        rows = await s.execute(
            text(
                "SELECT x.e->1 AS event FROM outbox o,"
                " jsonb_array_elements(o.events) WITH ORDINALITY AS x(e, n)"
                " WHERE x.e->>0 = :t ORDER BY o.id, x.n"
            ),
            {"t": topic},
        )
        return [r.event for r in rows]


async def session_events(db: Database, session_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in await outbox_events(db, f"session:{session_id}") if e["type"] == kind]


async def assert_charity_books(db: Database, charity_id: str) -> None:
    """Every movement of the charity's money is exactly one log entry, its balance is
    never negative and equals what its funds still hold."""
    async with db.reader() as s:
        ledger_refs = {
            r.reference
            for r in await s.execute(
                text(
                    "SELECT DISTINCT t.reference FROM ledger_transactions t"
                    " JOIN ledger_postings p ON p.transaction_id = t.id"
                    " WHERE p.account_code = :a"
                ),
                {"a": f"charity_payable:{charity_id}"},
            )
        }
        log_refs = [
            r.ref
            for r in await s.execute(
                text("SELECT ref FROM tlog_entries WHERE entry::jsonb ->> 'charity_id' = :c"),
                {"c": charity_id},
            )
        ]
        balance = await s.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM ledger_postings WHERE account_code = :a"),
            {"a": f"charity_payable:{charity_id}"},
        )
        unspent = await s.scalar(
            text(
                "SELECT coalesce(sum(amount - allocated), 0) FROM charity_funds"
                " WHERE charity_id = :c"
            ),
            {"c": charity_id},
        )
    as_log = {"sale": "pledge", "refund": "pledge_reversal"}
    expected = set()
    for ref in ledger_refs:
        kind, _, rest = ref.partition(":")
        expected.add(f"{as_log.get(kind, kind)}:{rest}")
    assert len(log_refs) == len(set(log_refs)) == len(expected)
    assert set(log_refs) == expected
    assert balance is not None and balance >= 0
    assert balance == unspent


async def assert_books_balance(db: Database) -> None:
    """Every points transaction sums to zero, so the whole book does; the money ledger too."""
    async with db.reader() as s:
        assert await points.unbalanced(s) == []
        total = await s.scalar(text("SELECT coalesce(sum(amount), 0) FROM points_postings"))
        assert total == 0
    await assert_ledger_invariants(db)


async def assert_log_gap_free(db: Database) -> None:
    """The transparency log's indexes run 0..size-1 with no gap, and its head agrees."""
    async with db.reader() as s:
        count, low, high = (
            await s.execute(text("SELECT count(*), min(idx), max(idx) FROM tlog_entries"))
        ).one()
        size = await s.scalar(text("SELECT size FROM tlog_head WHERE id = 1"))
    assert count == size and (count == 0 or (low, high) == (0, count - 1)), (count, low, high)
