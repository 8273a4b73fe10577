"""A provider's event about a payment: verified, applied exactly once, and what follows.

The signature is checked before anything is read (401, nothing changes). Then, in one
transaction: the event id is remembered (a second delivery changes nothing), the payment
tells what it is for, and that order or gift is locked before the payment itself. A
payment that succeeds for an order or gift that can still take it moves both forward; one
that succeeds too late (the order was cancelled or expired meanwhile) is returned to its
payer. After the commit: settlement is called for, the provider returns late money, the
relay sends the events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.orders import lifecycle as orders
from commerce.orders import service as order_service
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.outbox import service as outbox
from commerce.payments import lifecycle as payment_lifecycle
from commerce.payments import service as payments
from commerce.payments.events import PaymentRefunded
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from commerce.payments.providers import PENDING, ProviderEvent, SandboxProvider, provider_for
from commerce.payments.schemas import PaymentOut, WebhookAnswer, payment_json
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import conflict, not_found
from core.events import Topical
from core.services import Services
from core.shapes import TypedDict, closed
from donations.charity import sequencer
from donations.charity import service as charity
from donations.energy import earning as energy
from donations.gifts import lifecycle as gifts
from donations.gifts import service as gift_service
from donations.gifts.lifecycle import GiftStatus
from donations.gifts.schemas import DonationOut, GiftPaymentOut, donation_json
from donations.gifts.schemas import payment_json as gift_payment_json
from donations.sponsors import lifecycle as top_ups
from donations.sponsors import service as sponsors
from donations.sponsors.lifecycle import TopUpStatus
from donations.sponsors.schemas import TopUpOut, top_up_json
from panen.flows.settle import call_for_settlement

log = logging.getLogger("panen.flows")


@closed
class OrderRef(TypedDict):
    id: str
    status: str


@closed
class SandboxOrderReply(TypedDict):
    payment: PaymentOut
    order: OrderRef


@closed
class SandboxGiftReply(TypedDict):
    payment: GiftPaymentOut
    donation: DonationOut
    webhook: WebhookAnswer


@closed
class SandboxTopUpReply(TypedDict):
    payment: PaymentOut
    top_up: TopUpOut
    webhook: WebhookAnswer


SandboxReply = SandboxOrderReply | SandboxGiftReply | SandboxTopUpReply


@dataclass
class _Outcome:
    answer: WebhookAnswer
    settle: bool = False  # an order was paid: settlement is next
    refunds: list[str] = field(default_factory=list)  # payments to return after commit
    logged: list[str] = field(default_factory=list)  # log entries to sequence after commit


def _ignored(event: ProviderEvent, reason: str) -> _Outcome:
    return _Outcome({"status": "ignored", "reason": reason, "event_id": event.id})


def _applied(event: ProviderEvent, payment: Payment) -> _Outcome:
    return _Outcome({"status": "applied", "event_id": event.id, "payment_status": payment.status})


async def apply_event(
    services: Services, provider_name: str, headers: dict[str, str], body: bytes
) -> WebhookAnswer:
    """Apply one signed provider event, at most once. Bad signature: 401, nothing changes."""
    provider = provider_for(services, provider_name)
    event = await provider.verify(headers, body, time.time())
    if event.type == PENDING:  # nothing to do until it is decided (its status says so)
        return {"status": "ignored", "reason": "pending", "event_id": event.id}
    outcome = await services.db.run(lambda s: _apply(s, provider.name, event))
    await _after_commit(services, outcome)
    return outcome.answer


async def _apply(s: AsyncSession, provider: str, event: ProviderEvent) -> _Outcome:
    if not await payments.record_event(s, provider, event):
        return _Outcome({"status": "duplicate", "event_id": event.id})
    found = await payments.find(s, event.payment_id)  # no lock yet: what is it for?
    if found is None or found.provider != provider:
        return _ignored(event, "unknown payment")
    if (event.amount, event.currency) != (found.amount, found.currency):
        return _ignored(event, "amount mismatch")
    if found.order_id is not None:
        return await _for_order(s, provider, found.order_id, event)
    if found.purpose == "top_up":
        return await _for_top_up(s, provider, found.id, event)
    return await _for_gift(s, provider, found.id, event)


OTHER_PROVIDER = "the payment is another provider's"


def _not_theirs(payment: Payment, provider: str, event: ProviderEvent) -> _Outcome | None:
    """Checked again under the payment's lock: a checkout may have moved it to another
    provider since it was read (the sandbox's approval racing a Midtrans checkout)."""
    return None if payment.provider == provider else _ignored(event, OTHER_PROVIDER)


def _paid_by(payment: Payment, event: ProviderEvent) -> None:
    """Money that arrived says how it came (a refund depends on it: a bank transfer cannot
    go back through the gateway)."""
    if event.succeeded and event.method:
        payment.method = event.method


async def _for_order(
    s: AsyncSession, provider: str, order_id: str, event: ProviderEvent
) -> _Outcome:
    # The order, then its payment: the lock order of every money transaction.
    order = await order_service.lock(s, order_id)
    payment = await payments.lock(s, event.payment_id)
    assert order is not None and payment is not None
    if (other := _not_theirs(payment, provider, event)) is not None:
        return other
    now = utcnow()
    _paid_by(payment, event)
    if not event.succeeded:
        if payment.status != PaymentStatus.PENDING:
            return _ignored(event, f"payment {payment.status}")
        payment_lifecycle.move(payment, PaymentStatus.FAILED, now)
        if order.status == OrderStatus.RESERVED:
            await orders.move(s, order, OrderStatus.CANCELLED, now, "payment failed")
            await outbox.add(s, [outbox.release_row(order)])
        return _applied(event, payment)
    if payment.status == PaymentStatus.PENDING and order.status == OrderStatus.RESERVED:
        payment_lifecycle.move(payment, PaymentStatus.SUCCEEDED, now)
        await orders.move(s, order, OrderStatus.PAID, now, f"event {event.id}")
        outcome = _applied(event, payment)
        outcome.settle = True
        return outcome
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.CANCELLED, PaymentStatus.FAILED):
        return _ignored(event, f"payment {payment.status}")
    # Paid after the order closed (cancelled, expired): the money goes straight back.
    await payments.refund(s, payment, now)
    await orders.note(s, order, now, "late payment refunded")
    await outbox.add(s, [_refunded_event(payment, order.buyer_id, "order_closed", now)])
    outcome = _applied(event, payment)
    outcome.refunds.append(payment.id)
    return outcome


async def _unless_paid_now(
    s: AsyncSession,
    provider: str,
    payment: Payment,
    event: ProviderEvent,
    now: datetime,
    *,
    payable: bool,
    fail: Callable[[], None],
    payer_id: str,
    reason: str,
) -> _Outcome | None:
    """An event about a gift's or a top-up's payment (both locked), unless it is a success
    they can take, which the caller applies (None). A failure fails both; a success after
    the payment closed goes straight back to the payer; anything else changes nothing."""
    if (other := _not_theirs(payment, provider, event)) is not None:
        return other
    _paid_by(payment, event)
    if not event.succeeded:
        if payment.status != PaymentStatus.PENDING:
            return _ignored(event, f"payment {payment.status}")
        payment_lifecycle.move(payment, PaymentStatus.FAILED, now)
        fail()
        return _applied(event, payment)
    if payment.status == PaymentStatus.PENDING and payable:
        return None
    if payment.status not in (PaymentStatus.CANCELLED, PaymentStatus.FAILED):
        return _ignored(event, f"payment {payment.status}")
    await payments.refund(s, payment, now)
    await outbox.add(s, [_refunded_event(payment, payer_id, reason, now)])
    outcome = _applied(event, payment)
    outcome.refunds.append(payment.id)
    return outcome


async def _for_gift(
    s: AsyncSession, provider: str, payment_id: str, event: ProviderEvent
) -> _Outcome:
    # 1. The gift, then its payment.
    gift = await gift_service.lock_by_payment(s, payment_id)
    payment = await payments.lock(s, payment_id)
    assert gift is not None and payment is not None
    now = utcnow()
    decided = await _unless_paid_now(
        s,
        provider,
        payment,
        event,
        now,
        payable=gift.status == GiftStatus.PENDING,
        fail=lambda: gifts.move(gift, GiftStatus.FAILED, now),
        payer_id=gift.donor_id,
        reason="gift_closed",
    )
    if decided is not None:
        return decided
    payment_lifecycle.move(payment, PaymentStatus.SUCCEEDED, now)
    gifts.move(gift, GiftStatus.PAID, now)
    # 2. Energy points for giving (the giver's lock).
    events: list[Topical] = await energy.for_donation(
        s, gift.donor_id, gift.id, gift.session_id, gift.amount, gift.currency, now
    )
    # 3. The ledger.
    await ledger.post(
        s,
        "donation",
        f"donation:{gift.id}",
        gift.currency,
        gift_service.ledger_entries(gift, payment),
    )
    # 4. The charity's side: the fund, the room's matches and sums, a milestone …
    journal = charity.Journal()
    received = gift_service.movement(gift, now)
    events += await charity.gift_received(s, journal, received)
    # 5. … its entries, queued for the log …
    logged = await journal.write(s)
    # 6. … and the events: the room's sums, matches and points at once; the gift's own,
    # which name its log entry, held until the entry has its index.
    await outbox.add(s, events)
    await outbox.add(s, await gift_service.paid_events(s, gift, now), entry_of=received.ref)
    outcome = _applied(event, payment)
    outcome.logged = logged
    return outcome


async def _for_top_up(
    s: AsyncSession, provider: str, payment_id: str, event: ProviderEvent
) -> _Outcome:
    # The top-up, then its payment.
    top_up = await sponsors.lock_by_payment(s, payment_id)
    payment = await payments.lock(s, payment_id)
    assert top_up is not None and payment is not None
    now = utcnow()
    decided = await _unless_paid_now(
        s,
        provider,
        payment,
        event,
        now,
        payable=top_up.status == TopUpStatus.PENDING,
        fail=lambda: top_ups.move(top_up, TopUpStatus.FAILED, now),
        payer_id=top_up.sponsor_id,
        reason="top_up_closed",
    )
    if decided is not None:
        return decided
    payment_lifecycle.move(payment, PaymentStatus.SUCCEEDED, now)
    top_ups.move(top_up, TopUpStatus.PAID, now)
    await ledger.post(
        s,
        sponsors.LEDGER_KIND,
        f"top_up:{top_up.id}",
        top_up.currency,
        sponsors.ledger_entries(top_up, payment),
    )
    return _applied(event, payment)


def _refunded_event(payment: Payment, payer_id: str, reason: str, now: Any) -> Topical:
    return (
        f"me:{payer_id}",
        PaymentRefunded(
            payment_id=payment.id,
            amount=payment.amount,
            currency=payment.currency,
            reason=reason,
            status=payment.status,
            at=rfc3339(now),
            order_id=payment.order_id,
        ),
    )


async def _after_commit(services: Services, outcome: _Outcome) -> None:
    """What follows a committed change. None of it may report the change as failed: a
    step that fails here is done later by its sweeper (settle_sweep, refund_sweep, the
    relay's cron)."""
    try:
        if outcome.settle and services.jobs is not None:
            await call_for_settlement(services)
        if outcome.refunds:
            await payments.execute_refunds(services, outcome.refunds)
    except Exception:
        log.warning("after a payment event: left to the sweepers", exc_info=True)
    sequencer.soon(services, outcome.logged)
    await outbox.deliver(services)


# --- The sandbox: the payer approves or declines, the sandbox delivers its webhook ----------


async def sandbox_decide(
    services: Services, principal: Principal, payment_id: str, succeeded: bool
) -> SandboxReply:
    async with services.db.reader() as s:
        payment = await payments.find(s, payment_id)
    # Another payer's payment does not exist to the caller, as at its checkout.
    if (
        payment is None
        or payment.provider != "sandbox"
        or not (payment.payer_id == principal.user_id or principal.is_admin)
    ):
        raise not_found("payment", payment_id)
    if payment.status != PaymentStatus.PENDING:
        raise conflict(
            "payment_not_pending", f"this payment is {payment.status}", status=payment.status
        )
    provider = provider_for(services, "sandbox")
    assert isinstance(provider, SandboxProvider)
    # The sandbox signs what a gateway would send about this payment.
    headers, body = provider.webhook(payment, succeeded, time.time())
    result = await apply_event(services, "sandbox", headers, body)
    if result.get("reason") == OTHER_PROVIDER:
        raise conflict("checkout_exists", "this payment is being paid through its checkout")
    if result["status"] == "duplicate":
        # Like a gateway, the sandbox decides a payment once (its event id is the
        # payment's): of an approve and a decline sent at once, one wins.
        raise conflict("payment_not_pending", "this payment was already decided")
    if payment.purpose == "top_up":
        async with services.db.reader() as s:
            fresh_payment = await payments.find(s, payment_id)
            top_up = await sponsors.by_payment(s, payment_id)
        assert fresh_payment is not None and top_up is not None
        return {
            "payment": payment_json(fresh_payment),
            "top_up": top_up_json(top_up),
            "webhook": result,
        }
    if payment.order_id is None:
        gift, fresh = await gift_service.by_payment(services, payment_id)
        return {
            "payment": gift_payment_json(gift, fresh),
            "donation": donation_json(gift),
            "webhook": result,
        }
    async with services.db.reader() as s:
        fresh_payment = await payments.find(s, payment_id)
        order = await s.get(Order, payment.order_id)
    assert fresh_payment is not None and order is not None
    if succeeded and fresh_payment.status != PaymentStatus.SUCCEEDED:
        raise conflict(
            "order_not_payable", f"the order is {order.status}", status=order.status, webhook=result
        )
    return {
        "payment": payment_json(fresh_payment),
        "order": {"id": order.id, "status": order.status},
    }
