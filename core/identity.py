"""Who a token belongs to now: its user's roles, read from the database (cached briefly
per process), and whether the user revoked it.

A token carries its user id and when it was issued; a user's `tokens_valid_after` (set by
logging out, or by an admin) revokes every token issued before it. Roles granted or taken
and revocations take effect on every process within `FRESH_S`, and at once on the process
that made the change.

Reads are coalesced: when a live room's buyers all tap at once, each unseen user would
otherwise cost a pooled connection and a round trip; concurrent reads leave together as
one query for up to `READ_BATCH` users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, String, any_, bindparam, select

from core.auth import ROLES, Principal, Tokens
from core.batching import Batcher
from core.db import Database
from core.errors import ApiError
from core.models import User

FRESH_S = 5.0
KEPT = 50_000  # users remembered per process
READ_BATCH = 500


@dataclass(frozen=True, slots=True)
class _State:
    roles: frozenset[str]
    valid_after_ms: int
    read_at: float


# One statement whatever the batch's size (an IN list would be a new statement, compiled
# and prepared, for every size).
_READ = select(User.id, User.roles, User.tokens_valid_after).where(
    User.id == any_(bindparam("ids", type_=ARRAY(String)))
)


class Identities:
    def __init__(self, db: Database, tokens: Tokens) -> None:
        self.db = db
        self.tokens = tokens
        self._known: dict[str, _State] = {}
        self._reads: Batcher[str, _State | Exception] = Batcher(
            self._read_many, max_batch=READ_BATCH, max_in_flight=1
        )

    async def principal(self, token: str) -> Principal:
        """The caller a token names, with their current roles; 401 if the token is bad,
        expired, revoked, or its user is gone."""
        user_id, issued_ms = self.tokens.read(token)
        state = self._known.get(user_id)
        if state is None or time.monotonic() - state.read_at > FRESH_S:
            state = await self._read(user_id)
        if issued_ms <= state.valid_after_ms:
            raise ApiError(401, "token_revoked", "this token was revoked; log in again")
        return Principal(user_id, state.roles)

    async def _read(self, user_id: str) -> _State:
        state = await self._reads.submit(user_id)
        assert not isinstance(state, Exception)  # the batcher raised it for us
        return state

    async def _read_many(self, user_ids: list[str]) -> list[_State | Exception]:
        # Core on a pooled connection, not an ORM session: this runs once per few requests.
        async with self.db.statement() as conn:
            rows = (await conn.execute(_READ, {"ids": list(set(user_ids))})).all()
        now = time.monotonic()
        found = {
            row.id: _State(
                frozenset(r for r in row.roles if r in ROLES), _ms(row.tokens_valid_after), now
            )
            for row in rows
        }
        if len(self._known) + len(found) > KEPT:
            self._known.clear()
        self._known.update(found)
        return [found.get(u) or _gone() for u in user_ids]

    def forget(self, user_id: str) -> None:
        """This process changed the user (roles, revocation): read them again."""
        self._known.pop(user_id, None)


def _gone() -> ApiError:
    return ApiError(401, "invalid_token", "the token's user does not exist")


def _ms(at: datetime | None) -> int:
    return -1 if at is None else int(at.timestamp() * 1000)
