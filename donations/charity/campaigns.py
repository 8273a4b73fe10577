"""A campaign's public page: its progress in units across every session that raises for it,
the latest gifts (names as their givers chose), and the charity's latest disbursements with
their evidence and log entries, in a few queries."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.charities.models import Campaign, Charity
from commerce.sessions.models import LiveSession
from core.clock import rfc3339
from core.errors import not_found
from core.shapes import TypedDict, closed
from donations.charity.disbursements import allocations_of, disbursement_json
from donations.charity.models import Disbursement
from donations.charity.schemas import DisbursementOut
from donations.gifts.schemas import display_name

LATEST = 10


@closed
class CampaignGift(TypedDict):
    display_name: str
    amount: int
    currency: str
    message: str | None
    at: str | None
    entry_index: int | None  # the gift's entry in the transparency log


@closed
class CampaignSession(TypedDict):
    id: str
    title: str
    status: str


@closed
class CampaignPage(TypedDict):
    id: str
    title: str
    unit_name: str
    unit_cost: int
    goal_units: int
    currency: str
    charity_id: str
    charity_name: str
    raised: int  # pledges, gifts, matches and energy of its sessions, less reversals
    funded_units: int
    sessions: list[CampaignSession]
    latest_gifts: list[CampaignGift]
    disbursements: list[DisbursementOut]


async def campaign_page(s: AsyncSession, campaign_id: str) -> CampaignPage:
    campaign = await s.get(Campaign, campaign_id)
    if campaign is None:
        raise not_found("campaign", campaign_id)
    charity = await s.get(Charity, campaign.charity_id)
    assert charity is not None
    sessions = list(
        await s.scalars(
            select(LiveSession)
            .where(LiveSession.campaign_id == campaign.id)
            .order_by(LiveSession.created_at.desc())
        )
    )
    ids = [x.id for x in sessions]
    raised = int(
        await s.scalar(
            text(
                "SELECT coalesce(sum(pledged + donated + matched), 0)"
                " FROM session_charity_totals WHERE session_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        or 0
    ) + int(
        await s.scalar(
            text(
                "SELECT coalesce(sum(amount), 0) FROM points_redemptions"
                " WHERE session_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        or 0
    )
    gifts = (
        await s.execute(
            text(
                "SELECT u.display_name, d.visibility, d.amount, d.currency, d.message,"
                " d.message_status, ls.moderate_messages, d.paid_at, e.idx AS entry_index"
                " FROM donations d JOIN users u ON u.id = d.donor_id"
                " JOIN sessions ls ON ls.id = d.session_id"
                " LEFT JOIN tlog_entries e ON e.ref = 'donation:' || d.id"
                " WHERE d.session_id = ANY(:ids) AND d.status = 'paid'"
                " ORDER BY d.paid_at DESC LIMIT :n"
            ),
            {"ids": ids, "n": LATEST},
        )
    ).all()
    rows = list(
        await s.scalars(
            select(Disbursement)
            .where(
                Disbursement.charity_id == charity.id, Disbursement.currency == campaign.currency
            )
            .order_by(Disbursement.created_at.desc(), Disbursement.id.desc())
            .limit(5)
        )
    )
    allocations = await allocations_of(s, [d.id for d in rows])
    return {
        "id": campaign.id,
        "title": campaign.title,
        "unit_name": campaign.unit_name,
        "unit_cost": campaign.unit_cost,
        "goal_units": campaign.goal_units,
        "currency": campaign.currency,
        "charity_id": charity.id,
        "charity_name": charity.name,
        "raised": raised,
        "funded_units": raised // campaign.unit_cost,
        "sessions": [{"id": x.id, "title": x.title, "status": x.status} for x in sessions],
        "latest_gifts": [
            {
                "display_name": display_name(g.display_name, g.visibility),
                "amount": int(g.amount),
                "currency": g.currency,
                # As the room shows it: never once hidden, and while pending only in a
                # room that does not hold messages back.
                "message": g.message
                if g.message_status in ("approved", "read")
                or (g.message_status == "pending" and not g.moderate_messages)
                else None,
                "at": rfc3339(g.paid_at),
                "entry_index": g.entry_index,
            }
            for g in gifts
        ],
        "disbursements": [disbursement_json(d, allocations[d.id]) for d in rows],
    }
