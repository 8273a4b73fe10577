"""Receipts: everything a giver needs to check, without trusting us, that their money is in the
signed log and what it was spent on (panen verify, or the /verify page).
"""

from __future__ import annotations

import base64
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import rfc3339
from core.errors import ApiError
from core.services import Services
from donations.charity import sequencer
from donations.charity.models import Allocation, CharityFund, Disbursement
from donations.charity.schemas import ReceiptProof, TraceStep
from donations.transparency import checkpoint, log
from donations.transparency.service import signing_key


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def trace(s: AsyncSession, fund_ids: list[int]) -> list[TraceStep]:
    """The disbursements that spent these funds: purpose, evidence hash, log entry."""
    if not fund_ids:
        return []
    rows = await s.execute(
        select(Allocation.amount, CharityFund.kind, CharityFund.entry_index, Disbursement)
        .join(Disbursement, Disbursement.id == Allocation.disbursement_id)
        .join(CharityFund, CharityFund.id == Allocation.fund_id)
        .where(Allocation.fund_id.in_(fund_ids))
        .order_by(Disbursement.entry_index)
    )
    return [
        {
            "disbursement_id": d.id,
            "amount": int(amount),
            "from": kind,
            "from_entry_index": cast(int, entry_index),  # drawn only once in the log
            "purpose": d.purpose,
            "evidence_sha256": d.evidence_sha256,
            "evidence_url": d.evidence_url,
            "units": d.units,
            "entry_index": d.entry_index,
            "at": rfc3339(d.created_at),
        }
        for amount, kind, entry_index, d in rows
    ]


async def build(services: Services, fund: CharityFund, base_url: str) -> ReceiptProof:
    """The proof half of a receipt: entry, inclusion in a signed checkpoint, and the trace
    of this money and of the sponsor matches it drew."""
    async with services.db.reader() as s:
        matches = list(
            (
                await s.execute(
                    select(CharityFund).where(
                        CharityFund.source_ref == fund.ref, CharityFund.kind == "match"
                    )
                )
            ).scalars()
        )
    index = {f.ref: f.entry_index for f in (fund, *matches) if f.entry_index is not None}
    if unlogged := [f.ref for f in (fund, *matches) if f.ref not in index]:
        # Committed a moment ago, or left queued by a crash: sequenced now.
        index |= await sequencer.sequence(services, unlogged)
        if any(ref not in index for ref in unlogged):
            raise ApiError(
                503,
                "unavailable",
                "this money's entry is not in the log yet; retry",
                headers={"Retry-After": "2"},
            )
    at = index[fund.ref]
    ck = await checkpoint.covering(services.db, signing_key(services), at + 1)
    async with services.db.reader() as s:
        [entry] = await log.entries(s, at, at + 1)
        hashes = await log.inclusion_proof(s, at, ck.size)
        spent = await trace(s, [fund.id, *(m.id for m in matches)])
    key = signing_key(services).verifier
    out: ReceiptProof = {
        "entry": entry.entry,
        "entry_index": entry.idx,
        "leaf_hash": _b64(entry.leaf_hash),
        "checkpoint": ck.to_json(),
        "inclusion_proof": {
            "index": entry.idx,
            "size": ck.size,
            "hashes": [_b64(h) for h in hashes],
        },
        "public_key": {
            "key_id": key.key_id.hex(),
            "algorithm": "ed25519",
            "public_key": _b64(key.public_key),
            "vkey": key.vkey,
        },
        "log_url": base_url.rstrip("/"),
        "matched": [
            {"amount": m.amount, "entry_index": index[m.ref], "ref": m.ref} for m in matches
        ],
        "trace": spent,
    }
    if fund.donor_id is not None and fund.donor_salt is not None:
        out["donor"] = {"id": fund.donor_id, "salt": fund.donor_salt}
        out["salt"] = fund.donor_salt
    return out


async def fund_of(services: Services, ref: str) -> CharityFund:
    """The fund a movement opened; 409 `not_settled` until it has reached the charity."""
    async with services.db.reader() as s:
        fund = await s.scalar(select(CharityFund).where(CharityFund.ref == ref))
    if fund is None:
        raise ApiError(409, "not_settled", "this money has not reached the charity yet")
    return fund
