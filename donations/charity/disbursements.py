"""Disbursements: a charity spends what it received, oldest money first, never more.

One transaction per disbursement, serialised per charity by an advisory lock: the open funds
are locked oldest first and drawn down until the amount is covered; if they do not cover it,
nothing changes (409 insufficient_funds). The ledger moves the amount from the charity's
payable account to its disbursed account, and the log gains one entry naming the purpose,
the evidence hash, and every fund it drew on (by log index).
"""

from __future__ import annotations

from typing import Annotated, cast

from pydantic import Field, StringConstraints
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from core.clock import rfc3339, utcnow
from core.errors import conflict
from core.fields import Amount, Currency, Url
from core.http import Body as RequestBody
from core.ids import new_id
from donations.charity.models import Allocation, CharityFund, Disbursement
from donations.charity.schemas import AllocationOut, DisbursementOut
from donations.charity.service import charity_disbursed
from donations.transparency import log

Sha256 = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]{64}$")]


Purpose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class CreateDisbursement(RequestBody):
    amount: Amount
    purpose: Purpose
    evidence_sha256: Sha256
    evidence_url: Url | None = None
    units: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    currency: Currency = "IDR"


def _spendable(charity_id: str, currency: str) -> list[ColumnElement[bool]]:
    """Money the charity may spend: not held for a delivery, and in the log (its entry
    sequenced), so that an allocation can name it."""
    return [
        CharityFund.charity_id == charity_id,
        CharityFund.currency == currency,
        CharityFund.held.is_(False),
        CharityFund.entry_index.is_not(None),
    ]


async def available(s: AsyncSession, charity_id: str, currency: str) -> int:
    value = await s.scalar(
        select(func.coalesce(func.sum(CharityFund.amount - CharityFund.allocated), 0)).where(
            *_spendable(charity_id, currency)
        )
    )
    return int(value or 0)


async def disburse(
    s: AsyncSession, charity_id: str, body: CreateDisbursement, recorded_by: str
) -> Disbursement:
    await s.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"disburse:{charity_id}"}
    )
    have = await available(s, charity_id, body.currency)
    if have < body.amount:
        raise conflict(
            "insufficient_funds",
            "the charity has not received that much yet",
            available=have,
            amount=body.amount,
        )
    need, drawn = body.amount, []
    while need > 0:
        batch = (
            (
                await s.execute(
                    select(CharityFund)
                    .where(
                        *_spendable(charity_id, body.currency),
                        CharityFund.allocated < CharityFund.amount,
                    )
                    .order_by(CharityFund.id)
                    .limit(200)
                    .with_for_update()
                )
            )
            .scalars()
            .all()
        )
        if not batch:  # a refund took money back since we summed: refuse, change nothing
            raise conflict("insufficient_funds", "the charity's funds changed; retry")
        for fund in batch:
            take = min(need, fund.amount - fund.allocated)
            fund.allocated += take
            drawn.append((fund, take))
            need -= take
            if need == 0:
                break
        await s.flush()
    disbursement_id, now = new_id("dsb"), utcnow()
    await ledger.post(
        s,
        "disbursement",
        f"disbursement:{disbursement_id}",
        body.currency,
        [
            ledger.Entry(ledger.charity_payable(charity_id), -body.amount),
            ledger.Entry(charity_disbursed(charity_id), body.amount),
        ],
    )
    appended = await log.append(
        s,
        "disbursement",
        f"disbursement:{disbursement_id}",
        {
            "disbursement_id": disbursement_id,
            "charity_id": charity_id,
            "amount": body.amount,
            "currency": body.currency,
            "purpose": body.purpose,
            "evidence_sha256": body.evidence_sha256,
            "evidence_url": body.evidence_url,
            "units": body.units,
            "allocations": [{"entry": cast(int, f.entry_index), "amount": a} for f, a in drawn],
            "at": rfc3339(now),
        },
    )
    d = Disbursement(
        id=disbursement_id,
        charity_id=charity_id,
        amount=body.amount,
        currency=body.currency,
        purpose=body.purpose,
        evidence_sha256=body.evidence_sha256,
        evidence_url=body.evidence_url,
        units=body.units,
        entry_index=appended.index,
        recorded_by=recorded_by,
        created_at=now,
    )
    s.add(d)
    await s.flush()
    s.add_all([Allocation(disbursement_id=d.id, fund_id=f.id, amount=a) for f, a in drawn])
    return d


def disbursement_json(d: Disbursement, allocations: list[AllocationOut]) -> DisbursementOut:
    return {
        "id": d.id,
        "charity_id": d.charity_id,
        "amount": d.amount,
        "currency": d.currency,
        "purpose": d.purpose,
        "evidence_sha256": d.evidence_sha256,
        "evidence_url": d.evidence_url,
        "units": d.units,
        "entry_index": d.entry_index,
        "created_at": rfc3339(d.created_at),
        "allocations": allocations,
    }


async def allocations_of(s: AsyncSession, ids: list[str]) -> dict[str, list[AllocationOut]]:
    out: dict[str, list[AllocationOut]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await s.execute(
        select(Allocation.disbursement_id, Allocation.amount, CharityFund)
        .join(CharityFund, CharityFund.id == Allocation.fund_id)
        .where(Allocation.disbursement_id.in_(ids))
        .order_by(CharityFund.id)
    )
    for dsb_id, amount, fund in rows:
        out[dsb_id].append(
            {
                "kind": fund.kind,
                "entry_index": cast(int, fund.entry_index),  # drawn only once in the log
                "session_id": fund.session_id,
                "amount": int(amount),
                "received_at": rfc3339(fund.received_at),
            }
        )
    return out
