"""HTTP: a farmer's payout account and payouts; the operator's runs, bank file and
outcomes; Iris's callback."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from starlette.responses import Response

from commerce.catalog.service import load_farmer, require_farmer_or_admin
from commerce.payouts import service
from commerce.payouts.lifecycle import PAYOUT, PayoutStatus
from commerce.payouts.models import Payout
from commerce.payouts.providers import IrisProvider
from commerce.payouts.schemas import (
    AccountOut,
    FarmerPayouts,
    Outcome,
    PayoutList,
    PayoutOut,
    RunOut,
    SetAccount,
    StartRun,
    account_json,
    payout_json,
)
from commerce.payouts.tasks import next_run_at
from core.auth import Role
from core.clock import rfc3339
from core.errors import not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, Query, json, read_body, roles
from core.ids import new_id
from core.shapes import TypedDict, closed

api = Api()


@closed
class CallbackAnswer(TypedDict):
    status: str  # applied | ignored
    payout_id: str | None


@api.post(
    "/api/farmers/{farmer_id}/payout-account", LOGGED_IN, body=SetAccount, response=AccountOut
)
async def set_payout_account(ctx: Ctx) -> Response:
    """Where the farmer is paid (that farmer, or an admin). Later payouts go there; ones
    already made keep the account they were made to."""
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    body = await ctx.body(SetAccount)
    account = await service.set_account(
        ctx.services, farmer.id, body.bank, body.account_number, body.holder_name
    )
    return json(account_json(account))


@api.get("/api/farmers/{farmer_id}/payouts", LOGGED_IN, query=(LIMIT,), response=FarmerPayouts)
async def farmer_payouts(ctx: Ctx) -> Response:
    """What the farmer is owed, what waits for its boxes to be delivered, what the next run
    pays, what is on its way and what was paid, and their payouts (newest first)."""
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    conf = ctx.services.settings
    async with ctx.services.db.reader() as s:
        found = await service.balances(s, farmer.id)
        rows = await s.scalars(
            select(Payout)
            .where(Payout.farmer_id == farmer.id)
            .order_by(Payout.created_at.desc(), Payout.id.desc())
            .limit(ctx.query_int("limit"))
        )
        payouts = [payout_json(p) for p in rows]
    account = await service.account_of(ctx.services, farmer.id)
    return json(
        {
            "farmer_id": farmer.id,
            "account": account_json(account) if account else None,
            "balances": [
                {
                    "currency": b.currency,
                    "owed": b.owed,
                    "awaiting_delivery": min(b.held, max(b.owed, 0)),
                    "available": b.available if b.available >= conf.payout_minimum else 0,
                    "in_transit": b.in_transit,
                    "paid_out": b.paid_out,
                }
                for b in found.values()
            ],
            "next_run_at": rfc3339(next_run_at()),
            "minimum": conf.payout_minimum,
            "complete_after_s": conf.complete_after_s,
            "payouts": payouts,
        }
    )


@api.post("/api/admin/payout-runs", roles(Role.ADMIN), body=StartRun, response=RunOut)
async def start_run(ctx: Ctx) -> Response:
    """Pay every farmer their available balance now. The same run_id again pays nobody
    twice (it answers with what that run made)."""
    body = await ctx.body(StartRun)
    done = await service.run(ctx.services, body.run_id or new_id("run"))
    async with ctx.services.db.reader() as s:
        made = list(await s.scalars(select(Payout).where(Payout.id.in_(done.made))))
    return json(
        {
            "run_id": done.run_id,
            "made": [payout_json(p, full_account=True) for p in made],
            "already": done.already,
        }
    )


@api.get(
    "/api/admin/payouts",
    roles(Role.ADMIN),
    query=(Query("run_id", max_length=60), Query("status", choices=PAYOUT.states), LIMIT),
    response=PayoutList,
)
async def list_payouts(ctx: Ctx) -> Response:
    q = select(Payout).order_by(Payout.created_at.desc(), Payout.id.desc())
    if run_id := ctx.query("run_id"):
        q = q.where(Payout.run_id == run_id)
    if status := ctx.query("status"):
        q = q.where(Payout.status == status)
    async with ctx.services.db.reader() as s:
        rows = await s.scalars(q.limit(ctx.query_int("limit")))
        return json({"payouts": [payout_json(p, full_account=True) for p in rows]})


@api.get(
    "/api/admin/payouts/bank-file",
    roles(Role.ADMIN),
    query=(Query("run_id", max_length=60, required=True),),
    media_type="text/csv",
)
async def bank_file(ctx: Ctx) -> Response:
    """The run's bank-file payouts as CSV, for the operator to upload to the bank; they
    then report each outcome (POST …/complete or …/fail)."""
    async with ctx.services.db.reader() as s:
        rows = list(
            await s.scalars(
                select(Payout)
                .where(
                    Payout.run_id == ctx.query("run_id"),
                    Payout.provider == "bank_file",
                    Payout.status == PayoutStatus.SUBMITTED,
                )
                .order_by(Payout.id)
            )
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["payout_id", "bank", "account_number", "holder_name", "amount", "currency"])
    for p in rows:
        # A leading = + - @ would be a formula in a spreadsheet; none can start these cells
        # (ids, bank codes, digits, amounts) except a name, which gets a quote mark.
        name = " ".join(p.holder_name.split())  # one line, whatever an old row holds
        name = "'" + name if name[:1] in "=+-@" else name
        writer.writerow([p.id, p.bank, p.account_number, name, p.amount, p.currency])
    run = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(ctx.query("run_id"))
    )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="payouts-{run}.csv"'},
    )


@api.post(
    "/api/admin/payouts/{payout_id}/complete", roles(Role.ADMIN), body=Outcome, response=PayoutOut
)
async def payout_completed(ctx: Ctx) -> Response:
    """The bank paid this bank-file payout."""
    await ctx.body(Outcome)
    payout = await service.settle_by_hand(ctx.services, ctx.path("payout_id"), True, "")
    return json(payout_json(payout, full_account=True))


@api.post(
    "/api/admin/payouts/{payout_id}/fail", roles(Role.ADMIN), body=Outcome, response=PayoutOut
)
async def payout_failed(ctx: Ctx) -> Response:
    """The bank returned this bank-file payout: its money goes back to the farmer."""
    body = await ctx.body(Outcome)
    payout = await service.settle_by_hand(
        ctx.services, ctx.path("payout_id"), False, body.reason or "returned by the bank"
    )
    return json(payout_json(payout, full_account=True))


@api.post("/api/payouts/callback/iris", ANYONE, response=CallbackAnswer)
async def iris_callback(ctx: Ctx) -> Response:
    """Iris says where a payout is (signed with the merchant key; 401 otherwise)."""
    via = service.provider(ctx.services)
    if not isinstance(via, IrisProvider):
        raise not_found("payout provider", "iris")
    body = await read_body(ctx.request, ctx.services.settings.max_body_bytes)
    headers = {k.lower(): v for k, v in ctx.request.headers.items()}
    outcome = via.callback(headers, body)
    payout_id = await service.by_reference(ctx.services, "iris", outcome.reference)
    if payout_id is None or outcome.status == "submitted":
        return json({"status": "ignored", "payout_id": payout_id})
    if outcome.status == "completed":
        await service.complete(ctx.services, payout_id)
    else:
        await service.fail(ctx.services, payout_id, outcome.reason or "the bank refused it")
    return json({"status": "applied", "payout_id": payout_id})
