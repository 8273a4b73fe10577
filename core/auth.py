"""Passwords (argon2), signed bearer tokens with expiry, roles, and the caller's identity."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import jwt
import orjson
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
MAX_TOKEN = 4096  # characters; this server's tokens are about 250


class Tokens:
    """HS256 tokens carrying the user id and roles, valid for `ttl_s` seconds."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._key = secret.encode()
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
        """The claims of a token this server issued (RFC 7519 compact form, HS256).

        PyJWT (which issues them) validates each segment's alphabet character by character
        in Python, decodes with the standard library's json and inspects the key for PEM
        and DER on every call: 75-110 µs a token here, paid by every user's first request
        to a process, which is what a flash sale's stampede is made of. The same checks
        with C-speed pieces (a regular expression for the alphabet, `hmac.digest`, orjson)
        take about 13 µs. They are stricter where this issuer is: our header and claims
        only, integer times, no padding. `tests/test_tokens.py` holds them to PyJWT over
        forged, malformed and damaged tokens: whatever it refuses is refused too, with the
        same code (a token signed with our key may differ: `exp: true` is expired to
        PyJWT, invalid here)."""
        if len(token) > MAX_TOKEN:
            raise _invalid()
        try:
            head, body, sig = (_segment(part) for part in token.encode("ascii").split(b"."))
        except (UnicodeEncodeError, ValueError):  # not three base64url segments
            raise _invalid() from None
        signed = hmac.digest(self._key, token.rpartition(".")[0].encode(), "sha256")
        if not hmac.compare_digest(sig, signed):
            raise _invalid()
        try:
            header, claims = orjson.loads(head), orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _invalid() from None
        # Only what this issuer writes: a header naming another algorithm, or asking for
        # processing we do not do (`crit`, `b64`), is refused, as are claims we never set.
        if not isinstance(header, dict) or header.get("alg") != self.ALGORITHM:
            raise _invalid()
        if not header.keys() <= {"alg", "typ"} or not isinstance(claims, dict):
            raise _invalid()
        if not claims.keys() <= _CLAIMS or not claims.keys() >= {"sub", "exp", "iat"}:
            raise _invalid()
        sub, exp, iat = claims["sub"], claims["exp"], claims["iat"]
        if not (isinstance(sub, str) and type(exp) is int and type(iat) is int):
            raise _invalid()
        now = time.time()
        if iat > now:  # issued in the future
            raise _invalid()
        if exp <= now:
            raise ApiError(401, "token_expired", "the token has expired; log in again")
        return claims


_CLAIMS = frozenset({"sub", "roles", "iat", "exp", "ts"})
# base64url without padding (RFC 7515 section 2); a length of 4n+1 encodes no bytes.
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


def _segment(part: bytes) -> bytes:
    """A segment's bytes; ValueError unless it is their one unpadded base64url encoding
    (a segment with stray bits set would be a second spelling of the same token)."""
    if len(part) % 4 == 1 or _BASE64URL.fullmatch(part) is None:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != part:
        raise ValueError("not canonical")
    return raw


def _invalid() -> ApiError:
    return ApiError(401, "invalid_token", "the token is not valid")
