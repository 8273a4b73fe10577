"""Passwords (argon2), signed bearer tokens with expiry, roles, and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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

_hasher = PasswordHasher()
# A real hash to verify against when the handle is unknown, so that a login's timing
# does not tell whether an account exists.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


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


class Tokens:
    """HS256 tokens carrying the user id and roles, valid for `ttl_s` seconds."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s

    def issue(self, user_id: str, roles: frozenset[str] | set[str] | list[str]) -> str:
        now = int(utcnow().timestamp())
        claims = {"sub": user_id, "roles": sorted(roles), "iat": now, "exp": now + self._ttl_s}
        return jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token_expired", "the token has expired; log in again") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "invalid_token", "the token is not valid") from exc
        roles = claims.get("roles", [])
        if not isinstance(claims["sub"], str) or not isinstance(roles, list):
            raise ApiError(401, "invalid_token", "the token is not valid")
        return Principal(claims["sub"], frozenset(str(r) for r in roles if r in ROLES))
