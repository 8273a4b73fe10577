"""Who a token belongs to now: its user's roles, read from the database (cached briefly
per process), and whether the user revoked it.

A token carries its user id and when it was issued; a user's `tokens_valid_after` (set by
logging out, or by an admin) revokes every token issued before it. Roles granted or taken
and revocations take effect on every process within `FRESH_S`, and at once on the process
that made the change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core.auth import ROLES, Principal, Tokens
from core.db import Database
from core.errors import ApiError
from core.models import User

FRESH_S = 5.0
KEPT = 50_000  # users remembered per process


@dataclass(frozen=True, slots=True)
class _State:
    roles: frozenset[str]
    valid_after_ms: int
    read_at: float


class Identities:
    def __init__(self, db: Database, tokens: Tokens) -> None:
        self.db = db
        self.tokens = tokens
        self._known: dict[str, _State] = {}

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
        async with self.db.reader() as s:
            row = (
                await s.execute(
                    select(User.roles, User.tokens_valid_after).where(User.id == user_id)
                )
            ).one_or_none()
        if row is None:
            raise ApiError(401, "invalid_token", "the token's user does not exist")
        state = _State(
            frozenset(r for r in row.roles if r in ROLES),
            _ms(row.tokens_valid_after),
            time.monotonic(),
        )
        if len(self._known) >= KEPT:
            self._known.clear()
        self._known[user_id] = state
        return state

    def forget(self, user_id: str) -> None:
        """This process changed the user (roles, revocation): read them again."""
        self._known.pop(user_id, None)


def _ms(at: datetime | None) -> int:
    return -1 if at is None else int(at.timestamp() * 1000)
