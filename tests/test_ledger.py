"""The ledger's invariants, and the split of a sale; helpers other money tests reuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commerce.ledger import service as ledger
from commerce.orders.pricing import split
from tests.checks import assert_ledger_invariants


@given(
    price=st.integers(1, 10**9),
    qty=st.integers(1, 1000),
    bps=st.integers(0, 10_000),
    fee=st.integers(0, 10_000),
)
def test_a_percentage_split_adds_up_to_the_gross_exactly(price, qty, bps, fee):
    total = price * qty
    parts = split(total, qty, bps, 0, fee)
    assert parts.pledge + parts.farmer + parts.fee == total
    assert min(parts.pledge, parts.farmer, parts.fee) >= 0
    assert abs(parts.pledge * 10_000 - total * bps) <= 10_000


@given(
    price=st.integers(1, 10**9),
    qty=st.integers(1, 1000),
    per_unit_share=st.integers(0, 100),
    fee=st.integers(0, 10_000),
)
def test_a_per_unit_pledge_reaches_the_charity_exactly(price, qty, per_unit_share, fee):
    per_unit = price * per_unit_share // 100
    total = price * qty
    parts = split(total, qty, 0, per_unit, fee)
    assert parts.pledge == per_unit * qty
    assert parts.pledge + parts.farmer + parts.fee == total
    assert min(parts.farmer, parts.fee) >= 0


def test_split_ties_favour_the_charity_then_the_farmer():
    # 2 rupiah at 25% / 50% / 25%: the half rupiah left goes to the charity, not the fee.
    parts = split(2, 1, 2500, 0, 2500)
    assert (parts.pledge, parts.farmer, parts.fee) == (1, 1, 0)
    parts = split(1, 1, 5000, 0, 0)  # half and half: the charity first
    assert (parts.pledge, parts.farmer, parts.fee) == (1, 0, 0)
    parts = split(1, 1, 0, 0, 5000)  # farmer and platform tie: the farmer
    assert (parts.pledge, parts.farmer, parts.fee) == (0, 1, 0)


async def test_the_database_refuses_an_unbalanced_transaction(db):
    account = ledger.Account("test_unbalanced", "test")
    with pytest.raises(ledger.UnbalancedError):
        async with db.transaction() as s:
            await ledger.post(s, "test", "t:unbalanced", "IDR", [ledger.Entry(account, 5)])
    # Even a writer that skips our check cannot commit it.
    with pytest.raises(DBAPIError, match="does not balance"):
        async with db.transaction() as s:
            await s.execute(
                text(
                    "INSERT INTO ledger_accounts (code, kind, currency) VALUES ('x_raw','t','IDR')"
                    " ON CONFLICT DO NOTHING"
                )
            )
            await s.execute(
                text(
                    "INSERT INTO ledger_transactions (id, kind, reference, currency)"
                    " VALUES ('ltx_raw', 't', 't:raw', 'IDR')"
                )
            )
            await s.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, account_code, amount, currency)"
                    " VALUES ('ltx_raw', 'x_raw', 7, 'IDR')"
                )
            )


async def test_ledger_postings_are_never_updated_or_deleted(db):
    a, b = ledger.Account("test_a", "test"), ledger.Account("test_b", "test")
    async with db.transaction() as s:
        txn = await ledger.post(
            s, "test", "t:append-only", "IDR", [ledger.Entry(a, 10), ledger.Entry(b, -10)]
        )
    for statement in (
        "UPDATE ledger_postings SET amount = 11 WHERE transaction_id = :t",
        "DELETE FROM ledger_postings WHERE transaction_id = :t",
        "DELETE FROM ledger_transactions WHERE id = :t",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as s:
                await s.execute(text(statement), {"t": txn})
    async with db.reader() as s:
        assert await ledger.balance(s, "test_a") == 10
    await assert_ledger_invariants(db)
