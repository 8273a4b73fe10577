"""What a topic's totals hold, how events fold into them, and how they are rebuilt cold.

The folded state is a JSON object kept in Redis by the topic's ticker:
`{"totals": {...public totals...}, "donors": {name: amount}, "stock": {listing: remaining},
"listings": {id: listing}}`. Only `totals` goes out in frames.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, text

from commerce.catalog.models import Farmer, Product
from commerce.charities.models import Campaign
from commerce.deals.events import DealAnnounced, Pinned
from commerce.deals.models import FlashDeal
from commerce.deals.schemas import deal_json
from commerce.orders import totals as commerce_totals
from commerce.orders.events import OrderPaid, Refund, Sale
from commerce.payouts.events import PayoutMoved
from commerce.sessions.events import ChatRulesChanged, SessionMoved
from commerce.sessions.models import Listing, LiveSession
from commerce.sessions.schemas import listing_json, pinned_message_json
from commerce.stock import service as inventory
from commerce.stock.events import SoldOut, Stock
from core.clock import utcnow
from core.db import Database, Snapshot
from core.events import WRITTEN_BY, Event, EventError
from core.services import Services
from donations.charity import totals as donation_totals
from donations.charity.events import Match, Milestone
from donations.energy import pools
from donations.energy.events import Energy
from donations.gifts.events import Donation
from donations.gifts.schemas import ANONYMOUS

log = logging.getLogger("panen.live")

TOP_DONORS = 10
DONORS_KEPT = 1000  # the long tail of small donors cannot grow a room's state without bound

State = dict[str, Any]


def kind_of(topic: str) -> str:
    return topic.partition(":")[0]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def cold_state(services: Services, topic: str) -> State:
    """The topic's state rebuilt from the database (the truth), for a room nobody watched.

    Every read is made in one snapshot, kept in the state: an event whose transaction the
    snapshot includes is already in these sums, whenever it arrives (see `fold`)."""
    kind, _, ident = topic.partition(":")
    async with services.db.snapshot() as snapshot:
        if kind == "session":
            state = await _session_state(services, ident)
        elif kind == "farmer":
            state = await _farmer_state(services.db, ident)
        else:
            state = {"totals": {}}
    state[COUNTED_IN] = str(snapshot)
    return state


COUNTED_IN = "counted_in"  # the snapshot a cold rebuild read the sums from


def counted_in(state: State) -> Snapshot | None:
    """The snapshot whose transactions this state's sums already include, if rebuilt."""
    text = state.get(COUNTED_IN)
    return Snapshot.parse(text) if isinstance(text, str) else None


async def _session_state(services: Services, session_id: str) -> State:
    db = services.db
    async with db.reader() as s:
        live = await s.get(LiveSession, session_id)
        rows = (
            await s.execute(
                select(Listing, Product)
                .join(Product, Product.id == Listing.product_id)
                .where(Listing.session_id == session_id)
            )
        ).all()
        campaign = await s.get(Campaign, live.campaign_id) if live and live.campaign_id else None
        deal = (
            await s.execute(
                select(FlashDeal)
                .where(FlashDeal.session_id == session_id, FlashDeal.ends_at > utcnow())
                .order_by(FlashDeal.starts_at)
                .limit(1)
            )
        ).scalar_one_or_none()
    listings = {lst.id: listing_json(lst, prod) for lst, prod in rows}
    totals: dict[str, Any] = {
        "viewers": 0,
        "likes": 0,
        "orders": 0,
        "units_sold": {},
        "gross": 0,
        "currency": live.currency if live else None,
        "status": live.status if live else None,
        "charity": {"pledged": 0, "donated": 0, "matched": 0, "total": 0},
        "top_donors": [],
        "pinned": None,
        "flash_deal": None,
        # Energy points viewers redeemed into sponsor pools for this room's charity.
        "energy": {"points": 0, "amount": 0, "redemptions": 0},
        # The host's chat rules a viewer sees: a line every N s, the message pinned on top.
        "slow_mode_s": live.slow_mode_s if live else 0,
        "pinned_message": pinned_message_json(live) if live else None,
    }
    if deal is not None:  # the current or next deal, with its countdown times
        current = {k: v for k, v in deal_json(deal).items() if k != "session_id"}
        left = await inventory.remaining(services, session_id, deal.id)
        if isinstance(left, int):
            current["remaining"] = left
        totals["flash_deal"] = current
    if campaign is not None:
        totals["goal"] = {
            "unit_name": campaign.unit_name,
            "unit_cost": campaign.unit_cost,
            "funded_units": 0,
            "goal_units": campaign.goal_units,
        }
    state: State = {
        "totals": totals,
        "donors": {},
        "stock": {lid: lst["stock"] for lid, lst in listings.items()},
        "listings": listings,
    }
    _merge_db_totals(state, await commerce_totals.session_totals(db, session_id))
    _merge_db_totals(state, await donation_totals.session_totals(db, session_id))
    totals["energy"].update(await pools.session_energy(db, session_id))
    for lid in listings:  # the live counters, where the flash sale really happens
        left = await inventory.remaining(services, session_id, lid)
        if isinstance(left, int):
            state["stock"][lid] = left
    if live is not None and live.pinned_listing_id in listings:
        totals["pinned"] = dict(listings[live.pinned_listing_id])
    async with db.reader() as s:  # the messages hidden, for gift events still to come
        hidden = await s.execute(
            text(
                "SELECT id FROM donations WHERE session_id = :s AND message_status = 'hidden'"
                " ORDER BY paid_at DESC NULLS LAST LIMIT :n"
            ),
            {"s": session_id, "n": HIDDEN_KEPT},
        )
        state["hidden"] = [r.id for r in hidden][::-1]
    finish(state)
    return state


def _merge_db_totals(state: State, db_totals: dict[str, Any]) -> None:
    totals = state["totals"]
    for name in ("orders", "gross"):
        if name in db_totals:
            totals[name] = _int(db_totals[name])
    if isinstance(db_totals.get("units_sold"), dict):
        totals["units_sold"] = {str(k): _int(v) for k, v in db_totals["units_sold"].items()}
    charity = db_totals.get("charity")
    flat = {"pledged": db_totals.get("pledged"), "donated": db_totals.get("donated")}
    for name in ("pledged", "donated", "matched"):
        value = charity.get(name) if isinstance(charity, dict) else flat.get(name)
        if value is not None:
            totals["charity"][name] = _int(value)
    if isinstance(db_totals.get("remaining"), dict):
        state["stock"].update({str(k): _int(v) for k, v in db_totals["remaining"].items()})
    if isinstance(db_totals.get("top_donors"), list):
        for d in db_totals["top_donors"]:
            if isinstance(d, dict) and isinstance(d.get("display_name"), str):
                state["donors"][d["display_name"]] = _int(d.get("amount"))


async def _farmer_state(db: Database, farmer_id: str) -> State:
    totals: dict[str, Any] = {"units_sold": 0, "gross": 0, "pledged": 0}
    totals.update(await commerce_totals.farmer_totals(db, farmer_id))
    return {"totals": totals}


SEEN_KEPT = 5000  # order events remembered, as the outbox relay delivers at least once

# Every event a room or a farmer folds, by its `type`: each defined once, by its producer.
FOLDED: dict[str, type[Event]] = {
    e.type: e
    for e in (
        OrderPaid,
        Refund,
        Donation,
        Match,
        Milestone,
        Energy,
        Stock,
        SoldOut,
        Pinned,
        DealAnnounced,
        PayoutMoved,
        SessionMoved,
        ChatRulesChanged,
    )
}


def decode(raw: dict[str, Any]) -> Event | None:
    """The typed event of a dict from the bus; None for a type rooms do not fold or a
    malformed one (logged: every event here was written by our own producers)."""
    kind = FOLDED.get(str(raw.get("type")))
    if kind is None:
        return None
    try:
        return kind.from_json({k: v for k, v in raw.items() if k != WRITTEN_BY})
    except EventError:
        log.warning("malformed %s event dropped", raw.get("type"), exc_info=True)
        return None


def fold(
    state: State,
    topic: str,
    raw: dict[str, Any],
    *,
    already: Snapshot | None = None,
    seen: dict[str, None] | None = None,
) -> None:
    """Apply one event to a topic's state. An event written by a transaction that the
    `already` snapshot includes (the sums were read from it in a cold rebuild) changes no
    sums, and an order's event delivered twice (`seen` remembers recent ones) counts once."""
    event = decode(raw)
    if event is None:
        return
    xid = raw.get(WRITTEN_BY)
    counted = already is None or not isinstance(xid, int) or not already.sees(xid)
    if seen is not None and isinstance(event, Sale | PayoutMoved) and counted:
        mark = (
            f"{event.type}:{event.order_id}"
            if isinstance(event, Sale)
            else f"{event.type}:{event.payout_id}:{event.status}"
        )
        if mark in seen:
            return
        seen[mark] = None
        if len(seen) > SEEN_KEPT:
            del seen[next(iter(seen))]
    kind = kind_of(topic)
    if kind == "session":
        _fold_session(state, event, counted)
    elif kind == "farmer" and counted:
        _fold_farmer(state["totals"], event)


def _fold_session(state: State, event: Event, counted: bool) -> None:
    totals = state["totals"]
    charity = totals["charity"]
    match event:
        case Sale() if counted:
            sign = 1 if isinstance(event, OrderPaid) else -1
            totals["orders"] += sign
            units = totals["units_sold"]
            units[event.listing_id] = units.get(event.listing_id, 0) + sign * event.quantity
            if units[event.listing_id] == 0:  # as a rebuild shows it: no sales, no entry
                del units[event.listing_id]
            totals["gross"] += sign * event.gross
            charity["pledged"] += sign * event.pledge
        case Donation() if counted:
            charity["donated"] += event.amount
            if event.display_name and event.display_name != ANONYMOUS:  # not one giver
                donors = state.setdefault("donors", {})
                donors[event.display_name] = donors.get(event.display_name, 0) + event.amount
        case Match() if counted:
            charity["matched"] += event.amount
        case Energy() if counted:
            energy = totals.setdefault("energy", {"points": 0, "amount": 0, "redemptions": 0})
            energy["points"] += event.points
            energy["amount"] += event.amount
            energy["redemptions"] += 1
        case Stock() | SoldOut():
            left = event.remaining if isinstance(event, Stock) else 0
            current = totals.get("flash_deal")
            if event.deal_id is not None:  # a flash deal's own stock, not the listing's
                if isinstance(current, dict) and current.get("id") == event.deal_id:
                    current["remaining"] = left
            else:
                state.setdefault("stock", {})[event.listing_id] = left
        case Pinned():
            card: dict[str, Any] = dict(event.listing)
            state.setdefault("listings", {})[str(card.get("id"))] = card
            totals["pinned"] = card
            if isinstance(card.get("remaining"), int):
                state.setdefault("stock", {})[str(card.get("id"))] = card["remaining"]
        case DealAnnounced():
            totals["flash_deal"] = event.deal
        case SessionMoved():
            totals["status"] = event.status
        case ChatRulesChanged():
            totals["slow_mode_s"] = event.slow_mode_s
            totals["pinned_message"] = event.pinned_message
        case Milestone() if "goal" in totals:
            goal = totals["goal"]
            goal["funded_units"] = max(goal["funded_units"], event.funded_units)
        case _:
            pass


def _fold_farmer(totals: dict[str, Any], event: Event) -> None:
    """A farmer's sums move with their settled sales and their payouts; `payout_pending` is
    what the ledger owes them (their share, less payouts made), as `commerce.orders.totals`
    reads it."""
    if isinstance(event, PayoutMoved):
        for name, change in (
            ("payout_pending", event.owed),
            ("payout_in_transit", event.in_transit),
            ("payout_settled", event.paid_out),
        ):
            totals[name] = _int(totals.get(name)) + change
        return
    if not isinstance(event, Sale):
        return
    sign = 1 if isinstance(event, OrderPaid) else -1
    for name, value in (
        ("units_sold", event.quantity),
        ("gross", event.gross),
        ("pledged", event.pledge),
        ("fees", event.fee or 0),
        # The ledger owes them their share and the postage (each on its own line).
        ("payout_pending", (event.farmer_amount or 0) + (event.shipping_fee or 0)),
    ):
        totals[name] = _int(totals.get(name)) + sign * value


def finish(state: State) -> None:
    """Recompute what derives from the sums (charity total, goal, top donors, pinned stock);
    once per frame, not once per event."""
    totals = state["totals"]
    if "charity" not in totals:
        return
    charity = totals["charity"]
    # Energy viewers redeemed is sponsors' money given to this room's charity: it counts
    # toward the total and the goal like a match.
    energy_given = _int(totals.get("energy", {}).get("amount"))
    charity["total"] = charity["pledged"] + charity["donated"] + charity["matched"] + energy_given
    goal = totals.get("goal")
    if goal is not None and goal["unit_cost"] > 0:
        goal["funded_units"] = max(goal["funded_units"], charity["total"] // goal["unit_cost"])
    energy = totals.get("energy")
    if isinstance(energy, dict) and goal is not None and goal["unit_cost"] > 0:
        # "energy turned into N Love Packages"
        energy["units"] = _int(energy.get("amount")) // goal["unit_cost"]
        energy["unit_name"] = goal["unit_name"]
    donors: dict[str, int] = state.get("donors", {})
    if len(donors) > DONORS_KEPT:
        keep = sorted(donors.items(), key=lambda kv: -kv[1])[:DONORS_KEPT]
        donors = state["donors"] = dict(keep)
    top = sorted(donors.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DONORS]
    totals["top_donors"] = [{"display_name": n, "amount": a} for n, a in top]
    pinned = totals.get("pinned")
    if isinstance(pinned, dict):
        remaining = state.get("stock", {}).get(str(pinned.get("id")))
        if remaining is not None:
            pinned["remaining"] = remaining


QUIET = frozenset({"stock"})  # folded into the totals (pinned remaining), not listed

# What a room's activity feed lists, and how many of the latest a snapshot carries: a viewer
# who reloads or joins late sees what just happened, not an empty feed.
FEED = frozenset(
    {
        "order_paid",
        "refund",
        "donation",
        "donation_message",
        "match",
        "milestone",
        "energy",
        "pinned",
        "flash_deal",
        "sold_out",
    }
)
RECENT_KEPT = 20

# What a frame lists of the busiest kinds: at 500 sales a second a 4 Hz frame would carry
# 125 of them (25 KB to every viewer), while a phone shows a handful. The totals fold
# every event; a frame lists the newest few of each of these kinds and counts the rest.
SHOWN_PER_KIND = 10
# Gifts are never left out: the stream overlay shows each one and the host reads them out.
TRIMMED = frozenset({"order_paid", "refund", "match", "energy"})


def viewable(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A frame's events as a viewer can use them: every event of a rare kind, the newest
    SHOWN_PER_KIND of each busy kind (in their order), and how many of each it left out."""
    counts: dict[str, int] = {}
    for event in events:
        kind = event.get("type")
        if kind in TRIMMED:
            counts[kind] = counts.get(kind, 0) + 1
    more = {k: n - SHOWN_PER_KIND for k, n in counts.items() if n > SHOWN_PER_KIND}
    if not more:
        return events, {}
    skip = dict(more)
    shown = []
    for event in events:
        kind = event.get("type")
        if kind in skip and skip[kind] > 0:  # the oldest of a busy kind go first
            skip[kind] -= 1
            continue
        shown.append(event)
    return shown, more


def remember(state: State, events: list[dict[str, Any]]) -> None:
    """Keep a frame's feed events as the room's recent ones (a hidden message leaves them)."""
    recent: list[dict[str, Any]] = state.setdefault("recent", [])
    for event in events:
        if event.get("type") == "message_hidden":
            hidden = event.get("donation_id")
            recent[:] = [
                e
                for e in recent
                if not (e.get("type") == "donation_message" and e.get("donation_id") == hidden)
            ]
            for e in recent:
                if e.get("donation_id") == hidden:
                    e.pop("message", None)
        elif event.get("type") in FEED:
            recent.append(event)
    del recent[:-RECENT_KEPT]


HIDDEN_KEPT = 200  # hidden messages a room remembers, for gift events that come after


def strip_hidden(state: State, events: list[dict[str, Any]]) -> None:
    """Donor messages the host hid leave the frame's events, in the frame's order: a hide
    strips its gift's events before it, and, remembered (until approved again), its
    gift's events after it, in this frame and later ones. A gift's event can come after
    the hide: it is sent once its log entry has an index, and the host saw the gift in
    the database before that."""
    hidden: list[str] = state.setdefault("hidden", [])
    for i, event in enumerate(events):
        kind, gift = event.get("type"), event.get("donation_id")
        if gift is None:
            continue
        if kind == "message_hidden":
            if gift not in hidden:  # the outbox may deliver the hide twice
                hidden.append(str(gift))
            for earlier in events[:i]:
                if earlier.get("donation_id") == gift:
                    earlier.pop("message", None)
        elif kind == "donation_message" and gift in hidden:  # the host approved it again
            hidden.remove(str(gift))
        elif gift in hidden:
            event.pop("message", None)
    del hidden[:-HIDDEN_KEPT]


# The room is implied by the topic; the writing transaction is for folding only.
PRIVATE_FIELDS = frozenset({"session_id", WRITTEN_BY})


def public_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """An event as viewers see it (the room is implied by the topic), or None when the
    totals already say all of it."""
    if event.get("type") in QUIET:
        return None
    return {k: v for k, v in event.items() if k not in PRIVATE_FIELDS}


async def topic_exists(db: Database, topic: str) -> tuple[bool, str | None]:
    """Whether a session or farmer exists, and who owns it (host / farmer's user)."""
    kind, _, ident = topic.partition(":")
    async with db.reader() as s:
        if kind == "session":
            live = await s.get(LiveSession, ident)
            return live is not None, live.host_id if live else None
        if kind == "farmer":
            farmer = await s.get(Farmer, ident)
            return farmer is not None, farmer.user_id if farmer else None
    return False, None
