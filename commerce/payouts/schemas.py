"""Request bodies and JSON of payouts."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints, field_validator

from commerce.payouts.models import Payout, PayoutAccount
from commerce.payouts.providers import BANKS
from core.clock import rfc3339
from core.fields import Name
from core.http import Body
from core.shapes import TypedDict, closed


class SetAccount(Body):
    bank: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=20)]
    account_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{5,30}$", max_length=30)]
    holder_name: Name

    @field_validator("bank")
    @classmethod
    def known_bank(cls, value: str) -> str:
        if value not in BANKS:
            raise ValueError(f"one of {', '.join(sorted(BANKS))}")
        return value

    @field_validator("holder_name")
    @classmethod
    def one_line(cls, value: str) -> str:
        # It goes into a bank file a line per payout: a line break would forge a line.
        if any(c in value for c in "\r\n\t\u2028\u2029"):
            raise ValueError("a name on one line")
        return value


class StartRun(Body):
    # Starting the same run twice pays nobody twice; a new id is a new run.
    run_id: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,60}$", max_length=60)] | None
    ) = None


class Outcome(Body):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


@closed
class AccountOut(TypedDict):
    farmer_id: str
    bank: str
    account_number: str  # all but the last four digits masked
    holder_name: str
    updated_at: str | None


@closed
class PayoutOut(TypedDict):
    id: str
    run_id: str
    farmer_id: str
    amount: int
    currency: str
    status: str
    provider: str
    provider_ref: str | None
    bank: str
    account_number: str
    holder_name: str
    failure_reason: str | None
    created_at: str | None
    updated_at: str | None


@closed
class BalanceOut(TypedDict):
    """A farmer's money in one currency, each number named for what it is."""

    currency: str
    owed: int  # the ledger owes them: settled sales less refunds less payouts made
    awaiting_delivery: int  # of that, sales whose boxes have not completed: paid after
    available: int  # what the next payout would pay (owed less held, if above the minimum)
    in_transit: int  # in payouts on their way to the bank
    paid_out: int  # in payouts the bank completed


@closed
class FarmerPayouts(TypedDict):
    farmer_id: str
    account: AccountOut | None
    balances: list[BalanceOut]
    next_run_at: str | None
    minimum: int
    complete_after_s: int  # a delivered box completes this long after delivery
    payouts: list[PayoutOut]


@closed
class PayoutList(TypedDict):
    payouts: list[PayoutOut]


@closed
class RunOut(TypedDict):
    run_id: str
    made: list[PayoutOut]
    already: int  # payouts this run had made at an earlier start


def mask(account_number: str) -> str:
    return "•" * max(0, len(account_number) - 4) + account_number[-4:]


def account_json(a: PayoutAccount) -> AccountOut:
    return {
        "farmer_id": a.farmer_id,
        "bank": a.bank,
        "account_number": mask(a.account_number),
        "holder_name": a.holder_name,
        "updated_at": rfc3339(a.updated_at),
    }


def payout_json(p: Payout, *, full_account: bool = False) -> PayoutOut:
    return {
        "id": p.id,
        "run_id": p.run_id,
        "farmer_id": p.farmer_id,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status,
        "provider": p.provider,
        "provider_ref": p.provider_ref,
        "bank": p.bank,
        "account_number": p.account_number if full_account else mask(p.account_number),
        "holder_name": p.holder_name,
        "failure_reason": p.failure_reason,
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
    }
