"""Paying farmers: their payout account, what each may be paid, and a payout run.

What a farmer may be paid, per currency: what the ledger owes them (their payable
account: their share of settled sales and the postage of them, less refunds, less what
earlier payouts took) less what is held: the share and postage of every sale whose box has
not completed yet (delivered and kept), which a failed delivery would still take back.

A run (a daily cron, and `POST /api/admin/payout-runs`) is keyed by its id: for each
farmer with an account, in one transaction under that account's row lock, it records one
payout per currency and posts it from the farmer's payable to payouts-in-transit; a
second start of the same run finds its payouts made (`UNIQUE (run_id, farmer_id,
currency)`) and pays nothing twice. Then each is handed to the provider, outside any
transaction; a process killed between the two leaves it `pending` for `payout_sweep`.
Completion posts in-transit to sent; a failure posts it back to the farmer's payable.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.orders.lifecycle import OrderStatus
from commerce.outbox import service as outbox
from commerce.payouts import lifecycle
from commerce.payouts.events import moved
from commerce.payouts.lifecycle import PayoutStatus
from commerce.payouts.models import Payout, PayoutAccount
from commerce.payouts.providers import PayoutProvider, PayoutRefused, make
from core.clock import utcnow
from core.errors import conflict, not_found
from core.ids import new_id
from core.services import Services

log = logging.getLogger("panen.payouts")


def provider(services: Services) -> PayoutProvider:
    return services.shared("payouts.provider", lambda: make(services.settings))


@dataclass(frozen=True, slots=True)
class Balance:
    """A farmer's money in one currency, as a payout run sees it."""

    currency: str
    owed: int  # the ledger's farmer payable
    held: int  # sales settled, not yet completed (their boxes on the way)
    in_transit: int  # in payouts on their way
    paid_out: int  # in payouts completed

    @property
    def available(self) -> int:
        return max(0, self.owed - self.held)


async def balances(s: AsyncSession, farmer_id: str) -> dict[str, Balance]:
    """One statement, so one snapshot: read in two, a refund committing between them would
    leave its sale out of `held` but still in `owed`, and a run would pay it out."""
    rows = await s.execute(
        text(
            "WITH owed AS (SELECT currency, sum(amount) AS v FROM ledger_postings"
            "  WHERE account_code = :account GROUP BY currency),"
            " held AS (SELECT currency, sum(farmer_amount + shipping_fee) AS v FROM orders"
            "  WHERE farmer_id = :f AND status = :settled GROUP BY currency),"
            " moving AS (SELECT currency, sum(amount) FILTER (WHERE status <> 'completed') AS v,"
            "  sum(amount) FILTER (WHERE status = 'completed') AS done FROM payouts"
            "  WHERE farmer_id = :f AND status <> 'failed' GROUP BY currency),"
            " currencies AS (SELECT currency FROM owed UNION SELECT currency FROM held"
            "  UNION SELECT currency FROM moving)"
            " SELECT c.currency, coalesce(owed.v, 0), coalesce(held.v, 0),"
            "  coalesce(moving.v, 0), coalesce(moving.done, 0)"
            " FROM currencies c LEFT JOIN owed USING (currency) LEFT JOIN held USING (currency)"
            " LEFT JOIN moving USING (currency) ORDER BY c.currency"
        ),
        {
            "account": ledger.farmer_payable(farmer_id).code,
            "f": farmer_id,
            "settled": OrderStatus.SETTLED.value,
        },
    )
    return {
        str(c): Balance(str(c), int(owed), int(held), int(moving), int(done))
        for c, owed, held, moving, done in rows
    }


# --- The farmer's account ---------------------------------------------------------------


async def set_account(
    services: Services, farmer_id: str, bank: str, account_number: str, holder_name: str
) -> PayoutAccount:
    async with services.db.transaction() as s:
        account = await s.get(PayoutAccount, farmer_id, with_for_update=True)
        if account is None:
            account = PayoutAccount(farmer_id=farmer_id)
            s.add(account)
        account.bank, account.account_number = bank, account_number
        account.holder_name, account.updated_at = holder_name, utcnow()
    return account


async def account_of(services: Services, farmer_id: str) -> PayoutAccount | None:
    async with services.db.reader() as s:
        return await s.get(PayoutAccount, farmer_id)


# --- A run ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    made: list[str]  # payouts this start recorded
    already: int  # payouts this run had recorded before


async def run(services: Services, run_id: str) -> Run:
    """Pay every farmer with an account their available balance, once per run id."""
    async with services.db.reader() as s:
        farmers = list(await s.scalars(select(PayoutAccount.farmer_id)))
    made: list[str] = []
    already = 0
    for farmer_id in farmers:
        new, old = await services.db.run(
            functools.partial(_pay_farmer, services=services, run_id=run_id, farmer_id=farmer_id)
        )
        made += new
        already += old
    await outbox.deliver(services)
    await submit(services, made)
    return Run(run_id, made, already)


async def _pay_farmer(
    s: AsyncSession, services: Services, run_id: str, farmer_id: str
) -> tuple[list[str], int]:
    account = await s.get(PayoutAccount, farmer_id, with_for_update=True)
    if account is None:
        return [], 0
    conf = services.settings
    via = provider(services)
    done = set(
        await s.scalars(
            select(Payout.currency).where(Payout.run_id == run_id, Payout.farmer_id == farmer_id)
        )
    )
    made = []
    for balance in (await balances(s, farmer_id)).values():
        if balance.currency in done:
            continue
        if balance.available < conf.payout_minimum:
            continue
        if via.currencies is not None and balance.currency not in via.currencies:
            continue
        payout = Payout(
            id=new_id("pyo"),
            run_id=run_id,
            farmer_id=farmer_id,
            amount=balance.available,
            currency=balance.currency,
            provider=via.name,
            bank=account.bank,
            account_number=account.account_number,
            holder_name=account.holder_name,
        )
        lifecycle.start(payout)
        s.add(payout)
        await s.flush()
        await ledger.post(
            s,
            "payout",
            f"payout:{payout.id}",
            payout.currency,
            [
                ledger.Entry(ledger.farmer_payable(farmer_id), -payout.amount),
                ledger.Entry(ledger.payouts_in_transit(via.name), payout.amount),
            ],
        )
        await outbox.add(s, [moved(payout)])
        made.append(payout.id)
    return made, len(done)


async def submit(services: Services, payout_ids: list[str]) -> int:
    """Hand pending payouts to their provider (outside any transaction); returns how many
    it took. One the provider refuses fails (its money goes back); one it could not be
    reached for stays pending for the sweep."""
    taken = 0
    via = provider(services)
    for payout_id in payout_ids:
        async with services.db.reader() as s:
            payout = await s.get(Payout, payout_id)
        if payout is None or payout.status != PayoutStatus.PENDING:
            continue
        try:
            reference = await via.submit(payout)
        except PayoutRefused as refused:
            await fail(services, payout_id, refused.reason)
            continue
        except Exception:
            log.warning("payout %s not handed over; will retry", payout_id, exc_info=True)
            continue
        if await services.db.run(
            functools.partial(_submitted, payout_id=payout_id, reference=reference)
        ):
            taken += 1
    return taken


async def _submitted(s: AsyncSession, payout_id: str, reference: str) -> bool:
    payout = await s.get(Payout, payout_id, with_for_update=True)
    if payout is None or payout.status != PayoutStatus.PENDING:
        return False
    payout.provider_ref = reference
    lifecycle.move(payout, PayoutStatus.SUBMITTED, utcnow())
    return True


async def complete(services: Services, payout_id: str) -> Payout:
    """The farmer has the money: in-transit becomes sent. Repeating it changes nothing."""
    payout = await services.db.run(functools.partial(_complete, payout_id=payout_id))
    await outbox.deliver(services)
    return payout


async def _complete(s: AsyncSession, payout_id: str, reported: bool = False) -> Payout:
    payout = await _locked(s, payout_id)
    if reported:
        _reportable(payout)
    if payout.status == PayoutStatus.COMPLETED:
        return payout
    lifecycle.move(payout, PayoutStatus.COMPLETED, utcnow())
    await ledger.post(
        s,
        "payout_completed",
        f"payout_completed:{payout.id}",
        payout.currency,
        [
            ledger.Entry(ledger.payouts_in_transit(payout.provider), -payout.amount),
            ledger.Entry(ledger.payouts_sent(payout.provider), payout.amount),
        ],
    )
    await outbox.add(s, [moved(payout)])
    return payout


async def fail(services: Services, payout_id: str, reason: str) -> Payout:
    """It did not go through: the money goes back to the farmer's balance, for the next run.
    Repeating it changes nothing."""
    payout = await services.db.run(functools.partial(_fail, payout_id=payout_id, reason=reason))
    await outbox.deliver(services)
    return payout


async def _fail(s: AsyncSession, payout_id: str, reason: str, reported: bool = False) -> Payout:
    payout = await _locked(s, payout_id)
    if reported:
        _reportable(payout)
    if payout.status == PayoutStatus.FAILED:
        return payout
    lifecycle.move(payout, PayoutStatus.FAILED, utcnow())
    payout.failure_reason = reason[:500]
    await ledger.post(
        s,
        "payout_failed",
        f"payout_failed:{payout.id}",
        payout.currency,
        [
            ledger.Entry(ledger.payouts_in_transit(payout.provider), -payout.amount),
            ledger.Entry(ledger.farmer_payable(payout.farmer_id), payout.amount),
        ],
    )
    await outbox.add(s, [moved(payout)])
    return payout


async def _locked(s: AsyncSession, payout_id: str) -> Payout:
    payout = await s.get(Payout, payout_id, with_for_update=True, populate_existing=True)
    if payout is None:
        raise not_found("payout", payout_id)
    return payout


async def by_reference(services: Services, provider_name: str, reference: str) -> str | None:
    async with services.db.reader() as s:
        return await s.scalar(
            select(Payout.id).where(
                Payout.provider == provider_name, Payout.provider_ref == reference
            )
        )


async def settle_by_hand(services: Services, payout_id: str, ok: bool, reason: str) -> Payout:
    """An operator reports a bank-file payout's outcome (only they can)."""
    async with services.db.reader() as s:
        payout = await s.get(Payout, payout_id)
    if payout is None:
        raise not_found("payout", payout_id)
    if payout.provider != "bank_file":
        raise conflict("reported_by_provider", "this payout's provider reports its outcome itself")
    report = _complete if ok else functools.partial(_fail, reason=reason)
    payout = await services.db.run(functools.partial(report, payout_id=payout_id, reported=True))
    await outbox.deliver(services)
    return payout


def _reportable(payout: Payout) -> None:
    """An operator reports a payout once: checked under its lock, so two reports sent at
    once get one 200 and one 409 (the provider's own repeats are harmless instead)."""
    if payout.status != PayoutStatus.SUBMITTED:
        raise conflict(
            "invalid_transition",
            f"a {payout.status} payout cannot be reported",
            status=payout.status,
        )


# --- The sweep --------------------------------------------------------------------------


async def sweep(services: Services, older_than_s: float = 30.0) -> int:
    """Hand over payouts a crash left pending, and ask the provider about submitted ones
    whose callback did not come. Returns how many moved."""
    before = utcnow() - timedelta(seconds=older_than_s)
    async with services.db.reader() as s:
        pending = list(
            await s.scalars(
                select(Payout.id)
                .where(Payout.status == PayoutStatus.PENDING, Payout.updated_at < before)
                .limit(200)
            )
        )
        waiting = list(
            await s.scalars(
                select(Payout)
                .where(Payout.status == PayoutStatus.SUBMITTED, Payout.updated_at < before)
                .limit(200)
            )
        )
    moved = await submit(services, pending)
    via = provider(services)
    for payout in waiting:
        if payout.provider != via.name:
            continue
        try:
            outcome = await via.outcome(payout)
        except Exception:
            log.warning("could not ask about payout %s", payout.id, exc_info=True)
            continue
        if outcome is None or outcome.status == "submitted":
            continue
        if outcome.status == "completed":
            await complete(services, payout.id)
        else:
            await fail(services, payout.id, outcome.reason or "the bank refused it")
        moved += 1
    return moved
