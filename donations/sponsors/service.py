"""Topping up: a sponsor pays money in through the deployment's payment providers (the
same checkout, notifications and payment lifecycle as an order or a gift), and it is
credited to the account their matches and pools draw on. What follows a paid top-up is
composed by `panen.flows.payment`; here is the top-up itself and a sponsor's funds."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.payments import service as payments
from commerce.payments.models import Payment
from commerce.payments.providers import checkout_provider
from commerce.payments.schemas import payment_json
from core.auth import Principal
from core.errors import conflict
from core.ids import new_id
from core.services import Services
from donations.sponsors.lifecycle import TopUpStatus
from donations.sponsors.models import TopUp
from donations.sponsors.schemas import AddFunds, FundsIn, TopUpReply, top_up_json

PAYMENT_PREFIX = "spy"
LEDGER_KIND = "sponsor_top_up"


async def _answer(s: AsyncSession, body: AddFunds, key: str, sponsor_id: str) -> TopUpReply | None:
    """The top-up this key already made (same body), 409 for another body, None if none."""
    row = (
        await s.execute(
            select(TopUp, Payment)
            .join(Payment, Payment.id == TopUp.payment_id)
            .where(TopUp.sponsor_id == sponsor_id, TopUp.idempotency_key == key)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None
    top_up, payment = row[0], row[1]
    if (top_up.amount, top_up.currency) != (body.amount, body.currency):
        raise conflict(
            "idempotency_key_reused",
            "this idempotency key was used for a different top-up",
            top_up_id=top_up.id,
        )
    return {"top_up": top_up_json(top_up), "payment": payment_json(payment)}


async def add_funds(
    services: Services, principal: Principal, body: AddFunds, key: str
) -> tuple[TopUpReply, bool]:
    """Record a top-up with a pending payment; returns ({top_up, payment}, created). The
    payer opens the payment with the checkout, as for an order."""
    async with services.db.reader() as s:
        prior = await _answer(s, body, key, principal.user_id)
    if prior is not None:
        return prior, False
    provider = checkout_provider(services)
    top_up_id, payment_id = new_id("top"), new_id(PAYMENT_PREFIX)
    async with services.db.transaction() as s:
        inserted = await s.scalar(
            pg_insert(TopUp)
            .values(
                id=top_up_id,
                sponsor_id=principal.user_id,
                idempotency_key=key,
                amount=body.amount,
                currency=body.currency,
                status=TopUpStatus.PENDING,
                payment_id=payment_id,
            )
            .on_conflict_do_nothing(index_elements=[TopUp.sponsor_id, TopUp.idempotency_key])
            .returning(TopUp.id)
        )
        if inserted is not None:
            payments.add(
                s,
                payment_id=payment_id,
                purpose="top_up",
                payer_id=principal.user_id,
                provider=provider.name,
                provider_ref=None,
                amount=body.amount,
                currency=body.currency,
            )
            await s.flush()
        out = await _answer(s, body, key, principal.user_id)
    assert out is not None
    return out, inserted is not None


async def lock_by_payment(s: AsyncSession, payment_id: str) -> TopUp | None:
    """The top-up a payment is for, row-locked (before its payment)."""
    return await s.scalar(
        select(TopUp)
        .where(TopUp.payment_id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def by_payment(s: AsyncSession, payment_id: str) -> TopUp | None:
    return await s.scalar(select(TopUp).where(TopUp.payment_id == payment_id))


def ledger_entries(top_up: TopUp, payment: Payment) -> list[ledger.Entry]:
    """Money in from the provider, to the sponsor's account (which matches draw on)."""
    return [
        ledger.Entry(ledger.buyer_clearing(payment.provider), -top_up.amount),
        ledger.Entry(ledger.sponsor_payable(top_up.sponsor_id), top_up.amount),
    ]


async def funds(s: AsyncSession, sponsor_id: str) -> list[FundsIn]:
    """A sponsor's money by currency, read from the ledger: every account of theirs (the
    one top-ups and matches post to, and one per energy pool)."""
    own = ledger.sponsor_payable(sponsor_id).code
    rows = await s.execute(
        text(
            "SELECT p.currency,"
            " coalesce(sum(p.amount) FILTER (WHERE t.kind = :top), 0),"
            " coalesce(-sum(p.amount) FILTER (WHERE t.kind <> :top AND a.code = :own), 0),"
            " coalesce(-sum(p.amount) FILTER (WHERE a.code <> :own), 0),"
            " coalesce(sum(p.amount), 0)"
            " FROM ledger_accounts a"
            " JOIN ledger_postings p ON p.account_code = a.code"
            " JOIN ledger_transactions t ON t.id = p.transaction_id"
            " WHERE a.kind = 'sponsor_payable' AND a.owner_id = :sponsor"
            " GROUP BY p.currency ORDER BY p.currency"
        ),
        {"top": LEDGER_KIND, "own": own, "sponsor": sponsor_id},
    )
    return [
        {
            "currency": str(r[0]),
            "topped_up": int(r[1]),
            "matched": int(r[2]),
            "redeemed": int(r[3]),
            "balance": int(r[4]),
        }
        for r in rows
    ]
