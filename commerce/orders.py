"""Placing an order (HTTP and the WebSocket `order` frame share `place_order`), reading and
cancelling orders.

Placing takes stock with the reserve script and writes the order, its payment intent and
its first status in one statement (under the counter's generation); a process's
concurrent orders share both round trips (`core.batching`). Sold out, over the limit and
not live are answered from Redis and the in-process offers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import orjson
from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from commerce import hooks, inventory, ledger, offers, order_writer, outbox
from commerce.order_models import Order, OrderStatusChange, Payment
from commerce.payments import DEFAULT_PROVIDER, provider_for
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import ApiError, bad_request, conflict, forbidden, not_found
from core.events import publish
from core.fields import Id
from core.http import LOGGED_IN, Api, Body, Ctx, json
from core.ids import new_id
from core.services import Services

log = logging.getLogger("panen.orders")

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
]
MAX_QUANTITY = 1000


class PlaceOrder(Body):
    listing_id: Id
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]


def fingerprint(listing_id: str, quantity: int) -> str:
    return f"{listing_id}:{quantity}"


def order_json(
    order: Order, payment: Payment | None, history: list[OrderStatusChange] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": order.id,
        "session_id": order.session_id,
        "listing_id": order.listing_id,
        "deal_id": order.deal_id,
        "buyer_id": order.buyer_id,
        "farmer_id": order.farmer_id,
        "charity_id": order.charity_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "total": order.total,
        "pledge_amount": order.pledge_amount,
        "fee_amount": order.fee_amount,
        "farmer_amount": order.farmer_amount,
        "currency": order.currency,
        "status": order.status,
        "expires_at": rfc3339(order.expires_at),
        "paid_at": rfc3339(order.paid_at),
        "settled_at": rfc3339(order.settled_at),
        "created_at": rfc3339(order.created_at),
        "payment": None
        if payment is None
        else {"id": payment.id, "provider": payment.provider, "status": payment.status},
    }
    if history is not None:
        out["history"] = [
            {"status": h.status, "at": rfc3339(h.at), "note": h.note} for h in history
        ]
    return out


async def load_order(s: AsyncSession, order_id: str) -> dict[str, Any] | None:
    order = await s.get(Order, order_id)
    if order is None:
        return None
    payment = await s.scalar(select(Payment).where(Payment.order_id == order_id))
    history = (
        (
            await s.execute(
                select(OrderStatusChange)
                .where(OrderStatusChange.order_id == order_id)
                .order_by(OrderStatusChange.id)
            )
        )
        .scalars()
        .all()
    )
    return order_json(order, payment, list(history))


async def _existing(services: Services, buyer_id: str, key: str, fp: str) -> dict[str, Any]:
    """The order an idempotency key already made, or 409 if it was made for another body."""
    async with services.db.reader() as s:
        order = await s.scalar(
            select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == key)
        )
        if order is None:
            raise ApiError(
                409, "order_in_progress", "an order with this key is still being placed; retry"
            )
        if fp and fingerprint(order.listing_id, order.quantity) != fp:
            raise conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different order",
                order_id=order.id,
            )
        found = await load_order(s, order.id)
    assert found is not None
    return found


async def _await_prior(
    services: Services, session_id: str, buyer_id: str, key: str, prior_id: str
) -> dict[str, Any] | None:
    """The first answer to this key, once its request has written the order; None if that
    request gave up (its reservation was released), so this one should try afresh.

    Waits on Redis, not the database: in a stampede every duplicate send polls here."""
    delay, waited = 0.005, 0.0
    while waited < 10:
        body, named = await inventory.answered(services, session_id, buyer_id, key)
        if body is not None:
            answer: dict[str, Any] = orjson.loads(body)
            return answer
        if named != prior_id:
            return None
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.1)
    return await _existing(services, buyer_id, key, "")


_abandoned: set[asyncio.Task[None]] = set()


async def _release_unless_written(
    writing: asyncio.Future[order_writer.Written], give_back: Callable[[], Awaitable[int]]
) -> None:
    try:
        row = await writing
        landed = row.generation_ok and row.created_at is not None
    except Exception:
        landed = False
    if not landed:
        await give_back()


# (buyer, key) -> the answer of the send this process is handling now.
_placing: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}


async def place(
    services: Services, principal: Principal, listing_id: str, quantity: int, key: str
) -> tuple[dict[str, Any], bool]:
    """Reserve and record an order; returns (order, created). Raises ApiError (409
    sold_out / limit_exceeded / session_not_live / idempotency_key_reused, 404 listing)."""
    ident = (principal.user_id, key)
    first = _placing.get(ident)
    if first is not None:
        # The first send with this key is being handled by this very process: its answer
        # is ours (or, if it failed, we try on our own).
        try:
            order = await asyncio.shield(first)
        except Exception:
            order = None
        if order is not None:
            if order["listing_id"] != listing_id or order["quantity"] != quantity:
                raise conflict(
                    "idempotency_key_reused", "this idempotency key was used for a different order"
                )
            return order, False
        return await _place(services, principal, listing_id, quantity, key)
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    _placing[ident] = future
    try:
        order, created = await _place(services, principal, listing_id, quantity, key)
        if created:
            future.set_result(order)
        else:
            future.set_exception(ApiError(409, "not_first", "answered elsewhere"))
        return order, created
    except BaseException as exc:
        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
        raise
    finally:
        future.exception() if future.done() else future.cancel()  # mark retrieved
        del _placing[ident]


async def _place(
    services: Services, principal: Principal, listing_id: str, quantity: int, key: str
) -> tuple[dict[str, Any], bool]:
    if not 0 < quantity <= MAX_QUANTITY:
        raise bad_request("invalid_field", f"quantity must be 1..{MAX_QUANTITY}", "quantity")
    buyer = principal.user_id
    fp = fingerprint(listing_id, quantity)
    for _ in range(5):
        session_offers = await offers.offers_for_listing(services, listing_id)
        if session_offers.status != "live":
            raise conflict(
                "session_not_live", "this session is not live", status=session_offers.status
            )
        now = utcnow()
        offer = session_offers.offer(listing_id, now)
        if offer is None:
            raise not_found("listing", listing_id)
        sid = session_offers.session_id
        order_id = new_id("ord")
        expires_at = now + timedelta(seconds=services.settings.reservation_ttl_s)
        r = await inventory.reserve(
            services,
            session_id=sid,
            inventory_id=offer.inventory_id,
            buyer_id=buyer,
            idempotency_key=key,
            fingerprint=fp,
            quantity=quantity,
            limit=offer.max_per_buyer,
            order_id=order_id,
            expires_ms=int(expires_at.timestamp() * 1000),
        )
        if r.outcome == "missing":
            await inventory.rebuild(
                services, session_id=sid, inventory_id=offer.inventory_id, stock=offer.stock
            )
            continue
        if r.outcome == "dup":
            if r.prior_fingerprint != fp:
                raise conflict(
                    "idempotency_key_reused", "this idempotency key was used for a different order"
                )
            prior = await _await_prior(services, sid, buyer, key, r.prior_order_id)
            if prior is None:
                continue
            return prior, False
        if r.outcome == "sold_out":
            raise conflict(
                "sold_out", "not enough stock left", listing_id=listing_id, remaining=r.remaining
            )
        if r.outcome == "limit":
            raise conflict(
                "limit_exceeded",
                f"at most {offer.max_per_buyer} per buyer",
                max_per_buyer=offer.max_per_buyer,
                already=r.already,
            )
        total = offer.price * quantity
        parts = offers.split(
            total,
            quantity,
            offer.pledge_bps,
            offer.pledge_per_unit,
            services.settings.platform_fee_bps,
        )
        payment_id = new_id("pay")
        # Gives this request's hold (and its idempotency record) back to the counter.
        give_back = functools.partial(
            inventory.release,
            services,
            session_id=sid,
            inventory_id=offer.inventory_id,
            order_id=order_id,
            forget_idempotency=inventory.idem_field(buyer, key),
        )
        writing: asyncio.Future[order_writer.Written] | None = None
        try:
            provider = provider_for(services, DEFAULT_PROVIDER)
            provider_ref = await provider.create_intent(payment_id, total, session_offers.currency)
            params = {
                "id": order_id,
                "session_id": sid,
                "listing_id": listing_id,
                "deal_id": offer.deal_id,
                "inventory_id": offer.inventory_id,
                "generation": r.generation,
                "buyer_id": buyer,
                "farmer_id": offer.farmer_id,
                "charity_id": session_offers.charity_id,
                "idempotency_key": key,
                "quantity": quantity,
                "unit_price": offer.price,
                "total": total,
                "pledge_amount": parts.pledge,
                "fee_amount": parts.fee,
                "farmer_amount": parts.farmer,
                "currency": session_offers.currency,
                "expires_at": expires_at,
                "payment_id": payment_id,
                "provider": provider.name,
                "provider_ref": provider_ref,
            }
            writing = asyncio.ensure_future(order_writer.write(services, params))
            row = await asyncio.shield(writing)
        except asyncio.CancelledError:
            # The client went away, but its order may still be in a batch being written:
            # give the hold back only once we know the row did not land.
            if writing is not None:
                task = asyncio.create_task(_release_unless_written(writing, give_back))
                _abandoned.add(task)
                task.add_done_callback(_abandoned.discard)
            else:
                await give_back()
            raise
        except BaseException:
            await give_back()
            raise
        if not row.generation_ok:
            # The counter was rebuilt after we reserved: our hold is gone with it. Retry.
            await give_back()
            continue
        if row.created_at is None:
            # The database already has an order under this key (Redis lost its record).
            await give_back()
            return await _existing(services, buyer, key, fp), False
        order = Order(
            **{
                k: v
                for k, v in params.items()
                if k not in ("generation", "payment_id", "provider", "provider_ref")
            },
            status="reserved",
            created_at=row.created_at,
        )
        payment = Payment(id=payment_id, provider=provider.name, status="pending")
        out = order_json(order, payment)
        out["history"] = [{"status": "reserved", "at": rfc3339(row.created_at), "note": None}]
        await _announce(services, sid, offer, r.remaining, buyer, key, out)
        return out, True
    raise ApiError(503, "busy", "stock is being recounted; retry in a moment")


STOCK_EVERY_S = 0.1

# Per process: the latest stock left per (session, listing, deal) not yet announced.
_stock_pending: dict[tuple[str, str, str | None], int] = {}
_stock_flush: dict[int, asyncio.Task[None]] = {}


async def _flush_stock(services: Services) -> None:
    """Announce the stock left at most every STOCK_EVERY_S per process: a room's ticker
    coalesces anyway, and a stampede would otherwise publish once per order."""
    try:
        await asyncio.sleep(STOCK_EVERY_S)
        pending = dict(_stock_pending)
        _stock_pending.clear()
        for (session_id, listing_id, deal_id), left in pending.items():
            event: dict[str, Any] = {"type": "stock", "listing_id": listing_id, "remaining": left}
            if deal_id is not None:
                event["deal_id"] = deal_id
            await publish(services, f"session:{session_id}", event)
    finally:
        _stock_flush.pop(id(services), None)


async def _announce(
    services: Services,
    session_id: str,
    offer: offers.Offer,
    left: int,
    buyer_id: str,
    key: str,
    answer: dict[str, Any],
) -> None:
    """Keep the answer for duplicate sends (in other processes); tell the room the stock."""
    await inventory.remember_answer(services, session_id, buyer_id, key, orjson.dumps(answer))
    slot = (session_id, offer.listing_id, offer.deal_id)
    _stock_pending[slot] = min(left, _stock_pending.get(slot, left))
    if id(services) not in _stock_flush:
        _stock_flush[id(services)] = asyncio.create_task(_flush_stock(services))
    if left == 0:
        extra = {} if offer.deal_id is None else {"deal_id": offer.deal_id}
        await publish(
            services,
            f"session:{session_id}",
            {"type": "sold_out", "listing_id": offer.listing_id, **extra},
        )


async def place_order(
    services: Services, principal: Principal, listing_id: str, quantity: int, idempotency_key: str
) -> dict[str, Any]:
    """The one way to buy, for HTTP and the WebSocket `order` frame alike."""
    order, _created = await place(services, principal, listing_id, quantity, idempotency_key)
    return order


def may_read(principal: Principal, order: dict[str, Any], host_id: str) -> bool:
    return principal.is_admin or principal.user_id in (order["buyer_id"], host_id)


async def host_of(services: Services, session_id: str) -> str:
    return (await offers.session_offers(services, session_id)).host_id


async def cancel_order(services: Services, principal: Principal, order_id: str) -> dict[str, Any]:
    """Buyer: before payment. Host or admin: any time; a paid or settled order is refunded
    and a settled one gets reversing ledger postings. Stock returns either way."""
    async with services.db.transaction() as s:
        order = await s.get(Order, order_id, with_for_update=True)
        if order is None:
            raise not_found("order", order_id)
        host_id = await host_of(services, order.session_id)
        is_buyer = order.buyer_id == principal.user_id
        is_staff = principal.is_admin or principal.user_id == host_id
        if not (is_buyer or is_staff):
            raise forbidden("only its buyer, its host or an admin may cancel this order")
        if order.status in ("expired", "cancelled", "refunded"):
            return await _reload(s, order_id)  # cancelling twice is harmless
        if order.status != "reserved" and not is_staff:
            raise conflict(
                "already_paid",
                "a paid order can only be refunded by the host or an admin",
                status=order.status,
            )
        payment = await s.scalar(
            select(Payment).where(Payment.order_id == order_id).with_for_update()
        )
        now = utcnow()
        events: list[tuple[str, dict[str, Any]]] = [
            outbox.release_row(order.session_id, order.inventory_id, order.listing_id, order.id)
        ]
        if order.status == "reserved":
            new_status, note = "cancelled", f"cancelled by {principal.user_id}"
            if payment is not None and payment.status == "pending":
                payment.status, payment.updated_at = "cancelled", now
        else:
            new_status, note = "refunded", f"refunded by {principal.user_id}"
            if order.status == "settled":
                await ledger.post(
                    s,
                    "refund",
                    f"refund:{order.id}",
                    order.currency,
                    ledger.reversed_entries(sale_entries(order, payment)),
                    order_id=order.id,
                )
                if order.pledge_amount > 0:  # the charity's side, and the log, reverse too
                    events += await hooks.pledges_moved(
                        s,
                        [
                            hooks.PledgeMovement(
                                "pledge_reversal",
                                order.id,
                                order.session_id,
                                order.charity_id,
                                order.buyer_id,
                                order.pledge_amount,
                                order.currency,
                                now,
                            )
                        ],
                    )
                # What the purchase earned (energy points) is taken back here too.
                events += await hooks.orders_moved(
                    s,
                    [
                        hooks.OrderMovement(
                            "refunded",
                            order.id,
                            order.session_id,
                            order.buyer_id,
                            order.total,
                            order.currency,
                            now,
                        )
                    ],
                )
            if payment is not None:
                await provider_for(services, payment.provider).refund(payment.id, payment.amount)
                payment.status, payment.updated_at = "refunded", now
            refund = sale_event("refund", order, rfc3339(now))
            events += [
                (f"session:{order.session_id}", refund),
                (f"farmer:{order.farmer_id}", refund),
                (f"me:{order.buyer_id}", refund),
            ]
        order.status, order.closed_at = new_status, now
        s.add(OrderStatusChange(order_id=order.id, status=new_status, note=note))
        await outbox.add(s, events)
        await s.flush()
        out = await _reload(s, order_id)
    await outbox.relay(services)
    return out


async def _reload(s: AsyncSession, order_id: str) -> dict[str, Any]:
    found = await load_order(s, order_id)
    assert found is not None
    return found


def sale_event(kind: str, order: Order, at: str | None) -> dict[str, Any]:
    """An `order_paid` or `refund` event: rooms and farmers fold one as the other's
    opposite, so both have this one shape."""
    return {
        "type": kind,
        "order_id": order.id,
        "session_id": order.session_id,
        "listing_id": order.listing_id,
        "quantity": order.quantity,
        "gross": order.total,
        "pledge": order.pledge_amount,
        "currency": order.currency,
        "at": at,
    }


def sale_entries(order: Order, payment: Payment | None) -> list[ledger.Entry]:
    provider = payment.provider if payment is not None else DEFAULT_PROVIDER
    return [
        ledger.Entry(ledger.buyer_clearing(provider), -order.total),
        ledger.Entry(ledger.charity_payable(order.charity_id), order.pledge_amount),
        ledger.Entry(ledger.farmer_payable(order.farmer_id), order.farmer_amount),
        ledger.Entry(ledger.PLATFORM_FEE, order.fee_amount),
    ]


api = Api()


@api.post("/api/orders", LOGGED_IN)
async def create_order(ctx: Ctx) -> Response:
    key = ctx.idempotency_key()
    body = await ctx.body(PlaceOrder)
    order, created = await place(ctx.services, ctx.user, body.listing_id, body.quantity, key)
    return json({"order": order}, 201 if created else 200)


@api.get("/api/orders/{order_id}", LOGGED_IN)
async def get_order(ctx: Ctx) -> Response:
    order_id = ctx.path("order_id")
    async with ctx.services.db.reader() as s:
        order = await load_order(s, order_id)
    if order is None or not may_read(
        ctx.user, order, await host_of(ctx.services, order["session_id"])
    ):
        raise not_found("order", order_id)
    return json({"order": order})


@api.get("/api/me/orders", LOGGED_IN)
async def my_orders(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit", 50, 1, 200)
    query = (
        select(Order.id)
        .where(Order.buyer_id == ctx.user.user_id)
        .order_by(Order.id.desc())
        .limit(limit)
    )
    before = ctx.query("before")
    if before:
        query = query.where(Order.id < before)
    async with ctx.services.db.reader() as s:
        ids = (await s.execute(query)).scalars().all()
        orders = [o for o in [await load_order(s, i) for i in ids] if o is not None]
    return json(
        {"orders": orders, "next_before": orders[-1]["id"] if len(orders) == limit else None}
    )


@api.post("/api/orders/{order_id}/cancel", LOGGED_IN)
async def cancel(ctx: Ctx) -> Response:
    return json({"order": await cancel_order(ctx.services, ctx.user, ctx.path("order_id"))})
