"""Placing an order, and reading orders.

HTTP and the socket's `order` frame both call `place_order` with a body checked by
`schemas.PlaceOrder`. Placing, top to bottom: the session's offers (cached per process:
live? which price, which stock counter); `stock.reserve` (one Lua call per batch takes the
units, checks the buyer's limit and the idempotency key); the payment's intent with its
provider; `writer.write` (the order, its payment and its first history row in one
statement, batched with this process's concurrent orders); the answer kept for duplicate
sends, and the stock left announced. A hold is given back only when its order surely did
not land. Nothing here takes a database lock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import orjson
from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.orders import writer as order_writer
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order, OrderStatusChange
from commerce.orders.pricing import split
from commerce.orders.schemas import (
    OrderOut,
    Pending,
    PlaceOrder,
    Reserved,
    fingerprint,
    order_json,
    same_order,
)
from commerce.payments.models import Payment
from commerce.payments.providers import checkout_provider
from commerce.sessions import offers
from commerce.sessions.lifecycle import SessionStatus
from commerce.stock import service as inventory
from core.auth import Principal
from core.batching import Batcher
from core.clock import rfc3339, utcnow
from core.errors import ApiError, bad_request, conflict, not_found
from core.ids import new_id
from core.money import MAX_AMOUNT
from core.redis import UNREACHABLE
from core.services import Services

log = logging.getLogger("panen.orders")


_IDS = bindparam("ids", type_=ARRAY(String))


async def load_order(s: AsyncSession, order_id: str) -> OrderOut | None:
    return (await load_orders(s, [order_id])).get(order_id)


async def load_orders(s: AsyncSession, order_ids: Sequence[str]) -> dict[str, OrderOut]:
    """The orders with these ids as they are now, with payment and history: three
    queries however many orders (a page of a buyer's orders)."""
    ids = list(dict.fromkeys(order_ids))
    if not ids:
        return {}
    # `= ANY(array)`: one prepared statement whatever the number of ids.
    of = {"ids": ids}
    orders = (await s.execute(select(Order).where(Order.id == any_(_IDS)), of)).scalars().all()
    payments = {
        p.order_id: p
        for p in (
            await s.execute(select(Payment).where(Payment.order_id == any_(_IDS)), of)
        ).scalars()
    }
    history: dict[str, list[OrderStatusChange]] = {}
    for change in (
        await s.execute(
            select(OrderStatusChange)
            .where(OrderStatusChange.order_id == any_(_IDS))
            .order_by(OrderStatusChange.id),
            of,
        )
    ).scalars():
        history.setdefault(change.order_id, []).append(change)
    return {o.id: order_json(o, payments.get(o.id), history.get(o.id, [])) for o in orders}


async def _current(services: Services, order_id: str) -> OrderOut | None:
    """One order as it is now, read in a batch with this process's other such reads: in a
    stampede every duplicate send's answer is read here."""
    batcher: Batcher[str, OrderOut | None] = services.shared(
        "commerce.order_reader",
        lambda: Batcher(lambda ids: _read_current(services, ids), max_batch=200, max_in_flight=2),
    )
    return await batcher.submit(order_id)


async def _read_current(services: Services, ids: list[str]) -> list[OrderOut | None]:
    async with services.db.reader() as s:
        found = await load_orders(s, ids)
    return [found.get(i) for i in ids]


async def _existing(services: Services, buyer_id: str, key: str, fp: str) -> OrderOut:
    """The order an idempotency key already made, or 409 if it was made for another body."""
    found = await _existing_or_none(services, buyer_id, key, fp)
    if found is None:
        raise _in_progress()
    return found


def _in_progress() -> ApiError:
    return ApiError(409, "order_in_progress", "an order with this key is still being placed; retry")


async def _existing_or_none(
    services: Services, buyer_id: str, key: str, fp: str
) -> OrderOut | None:
    async with services.db.reader() as s:
        order = await s.scalar(
            select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == key)
        )
        if order is None:
            return None
        if fp and not same_order(order, fp):
            raise conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different order",
                order_id=order.id,
            )
        found = await load_order(s, order.id)
    assert found is not None
    return found


# A duplicate waits for its first send's answer at most AWAIT_PRIOR_S, then answers from
# the database (409 `order_in_progress` if the order is not there). Meanwhile it asks the
# database every PRIOR_IN_DB_S: a first send answers in milliseconds, and one that wrote
# its order and died before keeping the answer never will. While it hears wake-ups it
# still looks every UNANNOUNCED_POLL_S: a wake-up is a hint, lost with its connection, and
# a first send that dies announces nothing (`stock.tasks.reconcile_holds` frees its hold
# within a minute, and a duplicate waiting then finds that out for itself).
AWAIT_PRIOR_S = 10.0
PRIOR_IN_DB_S = 2.0
UNANNOUNCED_POLL_S = 0.25


async def _await_prior(
    services: Services,
    session_id: str,
    buyer_id: str,
    key: str,
    prior: inventory.Reservation,
    started_ms: int,
) -> OrderOut | None:
    """The first answer to this key, once its request has written the order; None if that
    request gave up (its reservation was released), or if its order can no longer land,
    so this one should try afresh.

    Waits on Redis, not the database: in a stampede every duplicate send polls here. A
    send that began before the first answer was kept ran alongside the placing: the order
    as placed is a true answer to it (nothing can change an order before its id is out),
    so it is answered from Redis. A later repeat is answered with the order as it is now
    (paid, cancelled…), read from the database.

    Whichever process keeps the answer, or gives the first send's hold back, wakes it
    (`inventory.waiting_for_answer`): it looks once on arrival and once when woken, not
    every few milliseconds while it waits."""
    prior_id = prior.prior_order_id
    loop = asyncio.get_running_loop()
    give_up, delay = loop.time() + AWAIT_PRIOR_S, 0.005
    look_in_db = loop.time() + PRIOR_IN_DB_S
    with inventory.waiting_for_answer(services, session_id, buyer_id, key) as woken:
        while loop.time() < give_up:
            found = await inventory.answered(services, session_id, buyer_id, key)
            if found.body is not None:
                answer: OrderOut = orjson.loads(found.body)
                if started_ms < found.kept_ms:
                    return answer
                return await _current(services, answer["id"]) or answer
            if found.names != prior_id:
                return None
            if loop.time() >= look_in_db:
                # Long for a first send: it may have written the order and died before
                # keeping its answer, which then never comes. The record names the order:
                # it is read by id, batched with this process's other reads (a stampede's
                # slow duplicates come together; their looks are spread a little too).
                if await _prior_is_dead(services, session_id, buyer_id, key, prior):
                    return None
                written = await _prior_if_written(services, prior_id)
                if written is not None:
                    return written
                look_in_db = loop.time() + PRIOR_IN_DB_S * random.uniform(0.75, 1.25)
            # Woken when the answer is kept or the first send gives up; the timer is for
            # when this process may not hear that.
            await woken.next(UNANNOUNCED_POLL_S if woken.listening else delay)
            delay = min(delay * 2, 0.1)
    written = await _current(services, prior_id)
    if written is None:
        raise _in_progress()
    return written


async def _prior_is_dead(
    services: Services, session_id: str, buyer_id: str, key: str, prior: inventory.Reservation
) -> bool:
    """Whether the order a key's record names can never land, and the record is dropped:
    the counter it reserved in was rebuilt past the generation it reserved in (the
    database refuses its write from then on) and it is not in the database. Then nothing
    else may ever drop the record (the rebuild took its hold, by which the cron finds such
    orders), and every resend would wait for an answer that cannot come.

    Which counter matters: a deal that began or ended between two sends puts them on
    different counters, whose generations are not comparable. The generation is read
    before the database: an order that landed did so before the rebuild that moved past
    it, so the read after it sees that order."""
    prior_id = prior.prior_order_id
    counter = await inventory.reserved_in(services, session_id, buyer_id, key, prior_id)
    if counter is None:
        return False
    generation = await inventory.generation(services, session_id, counter)
    if generation is None or generation <= prior.prior_generation:
        return False
    try:
        if await _current(services, prior_id) is not None:
            return False
    except Exception:  # the database cannot say now: keep waiting
        log.warning("could not look for order %s", prior_id, exc_info=True)
        return False
    await inventory.release(
        services,
        session_id=session_id,
        inventory_id=counter,
        order_id=prior_id,
        forget_idempotency=inventory.idem_field(buyer_id, key),
    )
    return True


async def _prior_if_written(services: Services, prior_id: str) -> OrderOut | None:
    """The prior order if it is in the database; None when it is not, or when the database
    cannot say right now (an extra look while waiting: the wait goes on)."""
    try:
        return await _current(services, prior_id)
    except Exception:
        log.warning("could not look for order %s while waiting for it", prior_id, exc_info=True)
        return None


_abandoned: set[asyncio.Task[None]] = set()


async def _landed(services: Services, order_id: str) -> bool | None:
    """Whether an order row exists (a write whose outcome we did not see: an error, a lost
    connection); None when the database cannot say right now."""
    try:
        async with services.db.reader() as s:
            return await s.scalar(select(Order.id).where(Order.id == order_id)) is not None
    except Exception:
        log.warning("could not tell whether order %s landed", order_id, exc_info=True)
        return None


async def _release_unless_landed(
    services: Services, order_id: str, give_back: Callable[[], Awaitable[int]]
) -> bool | None:
    """Give a hold back only when its order surely did not land. When that cannot be told
    the hold stays: `stock.tasks.reconcile_holds` gives it back within a minute if the
    order is not in the database by then (it recounts the counter: the order can no
    longer land)."""
    landed = await _landed(services, order_id)
    if landed is False:
        await give_back()
    return landed


async def _after_abandoned(
    services: Services,
    order_id: str,
    writing: asyncio.Future[order_writer.Written],
    give_back: Callable[[], Awaitable[int]],
) -> None:
    try:
        row = await writing
    except Exception:
        await _release_unless_landed(services, order_id, give_back)
        return
    if not (row.generation_ok and row.created_at is not None):
        await give_back()


# (buyer, key) -> the answer of the send this process is handling now.
_placing: dict[tuple[str, str], asyncio.Future[OrderOut]] = {}


async def place(
    services: Services,
    principal: Principal,
    listing_id: str,
    quantity: int,
    key: str,
    address_id: str | None = None,
) -> tuple[OrderOut, bool]:
    """Reserve and record an order; returns (order, created). Raises ApiError (409
    sold_out / limit_exceeded / session_not_live / idempotency_key_reused /
    address_required / not_shippable, 400 address_id, 404 listing)."""
    ident = (principal.user_id, key)
    fp = fingerprint(listing_id, quantity, address_id)
    first = _placing.get(ident)
    if first is not None:
        # The first send with this key is being handled by this very process: its answer
        # is ours (or, if it failed, we try on our own).
        try:
            order = await asyncio.shield(first)
        except Exception:
            order = None
        if order is not None:
            if not same_order(order, fp):
                raise conflict(
                    "idempotency_key_reused", "this idempotency key was used for a different order"
                )
            return order, False
        return await _place(services, principal, listing_id, quantity, key, address_id)
    future: asyncio.Future[OrderOut] = asyncio.get_running_loop().create_future()
    _placing[ident] = future
    try:
        order, created = await _place(services, principal, listing_id, quantity, key, address_id)
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
    services: Services,
    principal: Principal,
    listing_id: str,
    quantity: int,
    key: str,
    address_id: str | None,
) -> tuple[OrderOut, bool]:
    buyer = principal.user_id
    fp = fingerprint(listing_id, quantity, address_id)
    started_ms = int(time.time() * 1000)
    for _ in range(5):
        session_offers = await offers.offers_for_listing(services, listing_id)
        if session_offers.status != SessionStatus.LIVE:
            raise conflict(
                "session_not_live", "this session is not live", status=session_offers.status
            )
        now = utcnow()
        offer = session_offers.offer(listing_id, now)
        if offer is None:
            raise not_found("listing", listing_id)
        if offer.price * quantity > MAX_AMOUNT:  # one payment's most, as for any amount
            raise bad_request(
                "invalid_field", f"an order's total is at most {MAX_AMOUNT}", "quantity"
            )
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
        if r.outcome == "ended":  # ended through another process, this very moment
            offers.forget(sid)
            raise conflict("session_not_live", "this session is not live", status="ended")
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
            prior = await _await_prior(services, sid, buyer, key, r, started_ms)
            if prior is None:
                continue
            return prior, False
        if r.outcome in ("sold_out", "limit") and r.already > 0:
            # The buyer holds units here: this may be a resend of their order after Redis
            # lost its idempotency records (the counter was rebuilt from the database).
            # Only then is the database asked; a stampede's sold-outs are not.
            found = await _existing_or_none(services, buyer, key, fp)
            if found is not None:
                return found, False
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
        parts = split(
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
            # No network call here: the gateway is asked once the payer chooses a method.
            provider = checkout_provider(services)
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
                "provider_ref": None,
                "address_id": address_id,
                "weight_g": offer.weight_g * quantity,
            }
            writing = asyncio.ensure_future(order_writer.write(services, params))
            row = await asyncio.shield(writing)
        except asyncio.CancelledError:
            # The client went away, but its order may still be in a batch being written:
            # give the hold back only once we know the row did not land.
            if writing is not None:
                task = asyncio.create_task(_after_abandoned(services, order_id, writing, give_back))
                _abandoned.add(task)
                task.add_done_callback(_abandoned.discard)
            else:
                await give_back()
            raise
        except Exception:
            if writing is None:  # nothing was written: the provider refused the intent
                await give_back()
                raise
            if await _release_unless_landed(services, order_id, give_back):
                # It committed although we did not hear so: it is this request's order.
                return await _existing(services, buyer, key, fp), True
            log.warning("order %s was not recorded", order_id, exc_info=True)
            raise ApiError(
                503,
                "busy",
                "the order could not be recorded; retry with the same Idempotency-Key",
                headers={"Retry-After": "1"},
            ) from None
        if not row.generation_ok:
            # The counter was rebuilt after we reserved: our hold is gone with it. Retry
            # (on a counter of the database's generation: a stale one is dropped).
            await give_back()
            await inventory.drop_if_stale(
                services, session_id=sid, inventory_id=offer.inventory_id, generation=r.generation
            )
            continue
        if not (row.addressed and row.shippable):
            await give_back()
            raise _unshippable(row, address_id)
        if row.created_at is None:
            # The database already has an order under this key (Redis lost its record).
            await give_back()
            return await _existing(services, buyer, key, fp), False
        order = Reserved(
            id=order_id,
            session_id=sid,
            listing_id=listing_id,
            deal_id=offer.deal_id,
            buyer_id=buyer,
            farmer_id=offer.farmer_id,
            charity_id=session_offers.charity_id,
            quantity=quantity,
            unit_price=offer.price,
            total=total,
            pledge_amount=parts.pledge,
            fee_amount=parts.fee,
            farmer_amount=parts.farmer,
            currency=session_offers.currency,
            address_id=row.address_id,
            weight_g=offer.weight_g * quantity,
            shipping_fee=row.shipping_fee,
            expires_at=expires_at,
            created_at=row.created_at,
        )
        payment = Pending(id=payment_id, provider=provider.name, amount=total + row.shipping_fee)
        out = order_json(order, payment)
        out["history"] = [
            {"status": OrderStatus.RESERVED, "at": rfc3339(row.created_at), "note": None}
        ]
        await _announce(services, sid, offer, r.remaining, buyer, key, out)
        return out, True
    raise ApiError(503, "busy", "stock is being recounted; retry in a moment")


def _unshippable(row: order_writer.Written, address_id: str | None) -> ApiError:
    """Why an order cannot be shipped, naming the field to fix."""
    if not row.addressed and address_id is None:
        return conflict(
            "address_required",
            "add a shipping address (or choose a default) before buying",
            field="address_id",
        )
    if not row.addressed:
        return bad_request("invalid_field", "address_id: not one of your addresses", "address_id")
    return conflict(
        "not_shippable",
        "the farmer does not ship to this address's region",
        field="address_id",
        zone=row.zone,
    )


async def _announce(
    services: Services,
    session_id: str,
    offer: offers.Offer,
    left: int,
    buyer_id: str,
    key: str,
    answer: OrderOut,
) -> None:
    """Keep the answer for duplicate sends (in other processes); tell the room the stock.
    The order is recorded by now: if Redis fails here, a duplicate send is answered from
    the database and the room hears of the stock with the next change, so this never fails
    the request."""
    try:
        await inventory.remember_answer(services, session_id, buyer_id, key, orjson.dumps(answer))
        await inventory.announce_left(services, session_id, offer.listing_id, offer.deal_id, left)
    except UNREACHABLE:
        log.warning("order %s placed; its answer was not kept in Redis", answer["id"])
    except Exception:  # whatever it is, the order is recorded: never answer otherwise
        log.exception("order %s placed; keeping its answer failed", answer["id"])


async def place_order(
    services: Services, principal: Principal, body: PlaceOrder, idempotency_key: str
) -> tuple[OrderOut, bool]:
    """The one way to buy, for HTTP and the WebSocket `order` frame alike, both checked by
    `schemas.PlaceOrder`; returns (order, created)."""
    return await place(
        services, principal, body.listing_id, body.quantity, idempotency_key, body.address_id
    )


def may_read(principal: Principal, order: OrderOut, host_id: str) -> bool:
    return principal.is_admin or principal.user_id in (order["buyer_id"], host_id)


async def host_of(services: Services, session_id: str) -> str:
    """The session's host, from this process's offers cache (outside any transaction)."""
    return (await offers.session_offers(services, session_id)).host_id


async def lock(s: AsyncSession, order_id: str) -> Order | None:
    """The order, row-locked until the transaction ends (orders come first in the lock
    order: docs/architecture.md)."""
    return await s.get(Order, order_id, with_for_update=True, populate_existing=True)
