"""Passwords (argon2), signed bearer tokens with expiry, roles, and the caller's identity."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.clock import utcnow
from core.errors import ApiError


class Role(StrEnum):
    VIEWER = "viewer"
    HOST = "host"
    FARMER = "farmer"
    CHARITY_ADMIN = "charity_admin"
    SPONSOR = "sponsor"
    ADMIN = "admin"


ROLES = frozenset(r.value for r in Role)
T = TypeVar("T")

_hasher = PasswordHasher()
# A real hash to verify against when the handle is unknown, so that a login's timing
# does not tell whether an account exists.
_DUMMY_HASH = _hasher.hash("not a real password")


def _hash(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# Argon2 is tens of milliseconds of CPU on purpose: never on the event loop, where every
# socket of the process waits behind it. It runs on a small pool of threads (argon2-cffi
# releases the GIL), and only so many may wait for one: a login storm beyond that is told
# to come back (503) instead of queueing without end.
HASH_THREADS = 2
HASH_WAITING = 64


def _behind_the_loop() -> None:
    """A hashing thread yields the CPU to the event loop's (Linux nices threads one by one)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_pool = ThreadPoolExecutor(
    max_workers=HASH_THREADS, thread_name_prefix="argon2", initializer=_behind_the_loop
)
_in_line = 0


async def _off_loop(work: Callable[[], T]) -> T:
    global _in_line
    if _in_line >= HASH_WAITING:
        raise ApiError(503, "busy", "too many logins at once; retry", headers={"Retry-After": "1"})
    _in_line += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, work)
    finally:
        _in_line -= 1


async def hash_password(password: str) -> str:
    return await _off_loop(lambda: _hash(password))


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await _off_loop(lambda: _verify(password_hash, password))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user id and the roles the token was issued with."""

    user_id: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return Role.ADMIN in self.roles or any(r in self.roles for r in roles)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


CHECKED_KEPT = 50_000  # tokens remembered per process


class Tokens:
    """HS256 tokens carrying the user id and roles, valid for `ttl_s` seconds."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        # Tokens whose signature checked out: (user id, issued ms, expiry s). A client
        # sends its token with every request; checking the signature once is enough, and
        # expiry is still checked each time.
        self._checked: dict[str, tuple[str, int, int]] = {}

    def issue(self, user_id: str, roles: frozenset[str] | set[str] | list[str]) -> str:
        """A token for the user. Its roles are a hint for clients: the server reads each
        user's roles from the database (`core.identity`), so a change or a revocation
        takes effect without waiting for tokens to expire."""
        at = utcnow().timestamp()
        now = int(at)
        claims = {
            "sub": user_id,
            "roles": sorted(roles),
            "iat": now,
            "exp": now + self._ttl_s,
            "ts": int(at * 1000),  # when it was issued, in ms: revocation compares this
        }
        return jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)

    def read(self, token: str) -> tuple[str, int]:
        """(user id, when issued in ms) of a token whose signature and expiry check out."""
        known = self._checked.get(token)
        if known is not None and time.time() < known[2]:
            return known[0], known[1]
        claims = self._decode(token)
        issued = claims.get("ts", claims["iat"] * 1000)
        if not isinstance(claims["sub"], str) or not isinstance(issued, int):
            raise ApiError(401, "invalid_token", "the token is not valid")
        if len(self._checked) >= CHECKED_KEPT:
            self._checked.clear()
        self._checked[token] = (claims["sub"], issued, int(claims["exp"]))
        return claims["sub"], issued

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token_expired", "the token has expired; log in again") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "invalid_token", "the token is not valid") from exc
        return claims
