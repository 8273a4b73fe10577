"""The double-entry ledger: accounts, and transactions whose postings sum to zero.

Nothing here updates or deletes; a mistake is corrected by a reversing transaction.
The database refuses both, and refuses an unbalanced transaction at commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import insert_rows
from core.ids import new_id


class UnbalancedError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    kind: str
    owner_id: str | None = None


def buyer_clearing(provider: str) -> Account:
    """Money the payment provider has confirmed from buyers, not yet split."""
    return Account(f"buyer_clearing:{provider}", "buyer_clearing", provider)


def refunds_due(provider: str) -> Account:
    """Money that arrived for something that could no longer take it (an order cancelled or
    expired before its payment landed), owed back to its payers until the provider returns
    it."""
    return Account(f"refunds_due:{provider}", "refunds_due", provider)


def farmer_payable(farmer_id: str) -> Account:
    return Account(f"farmer_payable:{farmer_id}", "farmer_payable", farmer_id)


def charity_payable(charity_id: str) -> Account:
    return Account(f"charity_payable:{charity_id}", "charity_payable", charity_id)


def sponsor_payable(sponsor_id: str) -> Account:
    return Account(f"sponsor_payable:{sponsor_id}", "sponsor_payable", sponsor_id)


def payouts_in_transit(provider: str) -> Account:
    """Farmers' money out of their balance and on its way to their banks."""
    return Account(f"payouts_in_transit:{provider}", "payouts_in_transit", provider)


def payouts_sent(provider: str) -> Account:
    """Farmers' money that reached their banks."""
    return Account(f"payouts_sent:{provider}", "payouts_sent", provider)


PLATFORM_FEE = Account("platform_fee", "platform_fee")


@dataclass(frozen=True, slots=True)
class Entry:
    """One posting: a signed amount to an account (credit positive, debit negative)."""

    account: Account
    amount: int


def reversed_entries(entries: Sequence[Entry]) -> list[Entry]:
    return [Entry(e.account, -e.amount) for e in entries]


ACCOUNT_COLUMNS = (("code", "text"), ("kind", "text"), ("owner_id", "text"), ("currency", "text"))
TRANSACTION_COLUMNS = (
    ("id", "text"),
    ("kind", "text"),
    ("reference", "text"),
    ("order_id", "text"),
    ("currency", "text"),
)
POSTING_COLUMNS = (
    ("transaction_id", "text"),
    ("account_code", "text"),
    ("amount", "bigint"),
    ("currency", "text"),
)
# Sorted so that concurrent batches take the accounts' key locks in one order.
NO_CONFLICT = "ORDER BY 1 ON CONFLICT DO NOTHING"


async def post_many(
    s: AsyncSession,
    transactions: Sequence[tuple[str, str, str | None, str, Sequence[Entry]]],
) -> list[str]:
    """Write several transactions `(kind, reference, order_id, currency, entries)` in
    three statements. Raises UnbalancedError before touching the database if any
    transaction does not sum to zero; a duplicate reference raises IntegrityError."""
    if not transactions:
        return []
    accounts: dict[str, dict[str, str | None]] = {}
    txn_rows: list[dict[str, str | None]] = []
    posting_rows: list[dict[str, str | int]] = []
    ids: list[str] = []
    for kind, reference, order_id, currency, entries in transactions:
        entries = [e for e in entries if e.amount != 0]
        if not entries or sum(e.amount for e in entries) != 0:
            raise UnbalancedError(f"{reference}: postings must sum to zero and not be empty")
        txn_id = new_id("ltx")
        ids.append(txn_id)
        txn_rows.append(
            {
                "id": txn_id,
                "kind": kind,
                "reference": reference,
                "order_id": order_id,
                "currency": currency,
            }
        )
        for e in entries:
            accounts[e.account.code] = {
                "code": e.account.code,
                "kind": e.account.kind,
                "owner_id": e.account.owner_id,
                "currency": currency,
            }
            posting_rows.append(
                {
                    "transaction_id": txn_id,
                    "account_code": e.account.code,
                    "amount": e.amount,
                    "currency": currency,
                }
            )
    await insert_rows(s, "ledger_accounts", ACCOUNT_COLUMNS, list(accounts.values()), NO_CONFLICT)
    await insert_rows(s, "ledger_transactions", TRANSACTION_COLUMNS, txn_rows)
    await insert_rows(s, "ledger_postings", POSTING_COLUMNS, posting_rows)
    return ids


async def post(
    s: AsyncSession,
    kind: str,
    reference: str,
    currency: str,
    entries: Sequence[Entry],
    order_id: str | None = None,
) -> str:
    return (await post_many(s, [(kind, reference, order_id, currency, entries)]))[0]


async def balance(s: AsyncSession, account_code: str) -> int:
    value = await s.scalar(
        text("SELECT coalesce(sum(amount), 0) FROM ledger_postings WHERE account_code = :c"),
        {"c": account_code},
    )
    return int(value or 0)


async def unbalanced_transactions(s: AsyncSession) -> list[str]:
    """Ids of transactions whose postings do not sum to zero (always empty, or a bug)."""
    rows = await s.execute(
        text(
            "SELECT t.id FROM ledger_transactions t"
            " LEFT JOIN ledger_postings p ON p.transaction_id = t.id"
            " GROUP BY t.id HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.id) = 0"
        )
    )
    return [r[0] for r in rows]
