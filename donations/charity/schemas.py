"""Request bodies and JSON of sponsor matches, disbursements, reports and receipts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commerce.charities.schemas import CharityOut
from core.clock import rfc3339
from core.fields import Amount, Name
from core.http import Body as RequestBody
from core.shapes import NotRequired, TypedDict, closed
from donations.charity.models import Match
from donations.transparency.schemas import CheckpointOut, InclusionProof, KeyOut


class CreateMatch(RequestBody):
    sponsor_name: Name
    # Up to 10x: a sponsor may well give more than the gift it matches.
    ratio_bps: Annotated[int, Field(gt=0, le=100_000)]
    cap: Amount


@closed
class MatchOut(TypedDict):
    id: str
    session_id: str
    sponsor_id: str
    sponsor_name: str
    ratio_bps: int
    cap: int
    currency: str
    matched: int
    remaining: int
    created_at: str | None


@closed
class MatchList(TypedDict):
    matches: list[MatchOut]


@closed
class AllocationOut(TypedDict):
    """What a disbursement drew from one received fund."""

    kind: str
    entry_index: int
    session_id: str | None
    amount: int
    received_at: str | None


@closed
class DisbursementOut(TypedDict):
    id: str
    charity_id: str
    amount: int
    currency: str
    purpose: str
    evidence_sha256: str
    evidence_url: str | None
    units: int | None
    entry_index: int
    created_at: str | None
    allocations: list[AllocationOut]


@closed
class DisbursementList(TypedDict):
    disbursements: list[DisbursementOut]


@closed
class Totals(TypedDict):
    """Money toward a charity in one currency: received = pledges + donations + matched -
    reversals; balance = received - disbursed."""

    received: int
    pledges: int
    donations: int
    matched: int
    reversals: int
    disbursed: int
    balance: int


@closed
class CharityPublic(CharityOut):
    totals: dict[str, Totals]  # by currency


@closed
class CharityList(TypedDict):
    charities: list[CharityPublic]


@closed
class CharityReport(TypedDict):
    charity_id: str
    currencies: dict[str, Totals]


@closed
class SessionReport(TypedDict):
    session_id: str
    pledged: int
    donated: int
    matched: int
    received: int
    disbursed: int


# "from" is a keyword: this shape is spelled the functional way.
TraceStep = TypedDict(
    "TraceStep",
    {
        "disbursement_id": str,
        "amount": int,
        "from": str,  # the kind of money it came from
        "from_entry_index": int,
        "purpose": str,
        "evidence_sha256": str,
        "evidence_url": str | None,
        "units": int | None,
        "entry_index": int,
        "at": str | None,
    },
)
closed(TraceStep)


@closed
class MatchedFund(TypedDict):
    amount: int
    entry_index: int
    ref: str


@closed
class Donor(TypedDict):
    id: str
    salt: str


@closed
class ReceiptProof(TypedDict):
    """What any receipt carries: the entry, its inclusion in a signed checkpoint, the key,
    and the trace of the money (and of the matches it drew) into disbursements."""

    entry: str
    entry_index: int
    leaf_hash: str
    checkpoint: CheckpointOut
    inclusion_proof: InclusionProof
    public_key: KeyOut
    log_url: str
    matched: list[MatchedFund]
    trace: list[TraceStep]
    donor: NotRequired[Donor]  # a donor's receipt: opens the commitment in `entry`
    salt: NotRequired[str]


@closed
class Pledge(TypedDict):
    id: str
    order_id: str
    charity_id: str
    session_id: str
    amount: int
    currency: str
    status: str


@closed
class PledgeReceipt(ReceiptProof):
    order: Pledge


def match_json(m: Match) -> MatchOut:
    return {
        "id": m.id,
        "session_id": m.session_id,
        "sponsor_id": m.sponsor_id,
        "sponsor_name": m.sponsor_name,
        "ratio_bps": m.ratio_bps,
        "cap": m.cap,
        "currency": m.currency,
        "matched": m.matched,
        "remaining": m.cap - m.matched,
        "created_at": rfc3339(m.created_at),
    }
