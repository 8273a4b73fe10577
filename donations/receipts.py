"""Receipts: everything a giver needs to check, without trusting us, that their money is in
the signed log and what it was spent on (`panen verify`, or the /verify page)."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from commerce.order_models import Order
from core.clock import rfc3339
from core.errors import ApiError, not_found
from core.http import LOGGED_IN, Ctx, json
from core.services import Services
from donations import checkpoint, log
from donations.donate import donation_json, load_donation
from donations.models import Allocation, CharityFund, Disbursement
from donations.routes import api
from donations.transparency import signing_key


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def trace(s: AsyncSession, fund_ids: list[int]) -> list[dict[str, Any]]:
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
            "from_entry_index": int(entry_index),
            "purpose": d.purpose,
            "evidence_sha256": d.evidence_sha256,
            "evidence_url": d.evidence_url,
            "units": d.units,
            "entry_index": d.entry_index,
            "at": rfc3339(d.created_at),
        }
        for amount, kind, entry_index, d in rows
    ]


async def build(services: Services, fund: CharityFund, base_url: str) -> dict[str, Any]:
    """The proof half of a receipt: entry, inclusion in a signed checkpoint, and the trace
    of this money and of the sponsor matches it drew."""
    ck = await checkpoint.covering(services.db, signing_key(services), fund.entry_index + 1)
    async with services.db.reader() as s:
        [entry] = await log.entries(s, fund.entry_index, fund.entry_index + 1)
        hashes = await log.inclusion_proof(s, fund.entry_index, ck.size)
        matches = list(
            (
                await s.execute(
                    select(CharityFund).where(
                        CharityFund.source_ref == fund.ref, CharityFund.kind == "match"
                    )
                )
            ).scalars()
        )
        spent = await trace(s, [fund.id, *(m.id for m in matches)])
    key = signing_key(services).verifier
    out: dict[str, Any] = {
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
            {"amount": m.amount, "entry_index": m.entry_index, "ref": m.ref} for m in matches
        ],
        "trace": spent,
    }
    if fund.donor_id is not None and fund.donor_salt is not None:
        out["donor"] = {"id": fund.donor_id, "salt": fund.donor_salt}
        out["salt"] = fund.donor_salt
    return out


async def _fund(services: Services, ref: str) -> CharityFund:
    async with services.db.reader() as s:
        fund = await s.scalar(select(CharityFund).where(CharityFund.ref == ref))
    if fund is None:
        raise ApiError(409, "not_settled", "this money has not reached the charity yet")
    return fund


@api.get("/api/donations/{donation_id}/receipt", LOGGED_IN)
async def donation_receipt(ctx: Ctx) -> Response:
    d = await load_donation(ctx.services, ctx.user, ctx.path("donation_id"))
    if d.status != "paid":
        raise ApiError(409, "not_settled", f"the donation is {d.status}", {"status": d.status})
    fund = await _fund(ctx.services, f"donation:{d.id}")
    body = await build(ctx.services, fund, str(ctx.request.base_url))
    return json({"donation": donation_json(d), **body})


@api.get("/api/orders/{order_id}/pledge-receipt", LOGGED_IN)
async def pledge_receipt(ctx: Ctx) -> Response:
    """The same for the charity pledge of a settled order, to its buyer."""
    order_id = ctx.path("order_id")
    async with ctx.services.db.reader() as s:
        order = await s.get(Order, order_id)
    if order is None or not (order.buyer_id == ctx.user.user_id or ctx.user.is_admin):
        raise not_found("order", order_id)
    fund = await _fund(ctx.services, f"pledge:{order.id}")
    body = await build(ctx.services, fund, str(ctx.request.base_url))
    pledge = {
        "id": order.id,
        "order_id": order.id,
        "charity_id": order.charity_id,
        "session_id": order.session_id,
        "amount": order.pledge_amount,
        "currency": order.currency,
        "status": order.status,
    }
    return json({"order": pledge, **body})
