"""Registration, login, the current user, and admin-created accounts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from core.auth import ROLES, Role, hash_password, verify_password
from core.clock import utcnow
from core.db import Database
from core.errors import ApiError, bad_request, conflict, not_found
from core.http import ANYONE, LOGGED_IN, Api, Body, Ctx, json, roles
from core.ids import new_id
from core.models import User, UserOut
from core.ratelimit import RateLimiter
from core.shapes import TypedDict, closed

LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW_S = 300

Handle = Annotated[str, StringConstraints(max_length=32, pattern=r"^[a-z0-9_]{3,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=200)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class Register(Body):
    handle: Handle
    password: Password
    display_name: DisplayName


class Login(Body):
    handle: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    password: Annotated[str, StringConstraints(max_length=200)]


class CreateUser(Register):
    roles: Annotated[list[str], Field(min_length=1, max_length=6)]


async def create_user(
    db: Database, handle: str, password: str, display_name: str, user_roles: list[str]
) -> User:
    unknown = sorted(set(user_roles) - ROLES)
    if unknown:
        raise bad_request("invalid_field", f"unknown roles: {', '.join(unknown)}", "roles")
    user = User(
        id=new_id("usr"),
        handle=handle,
        display_name=display_name,
        password_hash=await hash_password(password),
        roles=sorted(set(user_roles)),
    )
    try:
        async with db.transaction() as s:
            s.add(user)
    except IntegrityError:
        raise conflict("handle_taken", f"the handle {handle!r} is taken", field="handle") from None
    return user


async def get_user(db: Database, user_id: str) -> User:
    async with db.reader() as s:
        user = await s.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


async def grant_role(s: AsyncSession, user_id: str, role: str) -> User:
    """Add a role to a user inside the caller's transaction. Roles are read from here on
    each request (`core.identity`): the user needs no new token for it."""
    user = await s.get(User, user_id, with_for_update=True)
    if user is None:
        raise not_found("user", user_id)
    if role not in user.roles:
        user.roles = sorted({*user.roles, role})
    return user


api = Api()


def client_address(ctx: Ctx) -> str:
    """The caller's address (the proxy's X-Forwarded-For when it is a trusted proxy)."""
    client = ctx.request.client
    return client.host if client is not None else "unknown"


async def per_address(ctx: Ctx, what: str, limit: int, window_s: float) -> None:
    """429 once an address made more than `limit` of `what` in the window (0: no limit)."""
    if limit > 0:
        key = ctx.services.keys("ratelimit", what, client_address(ctx))
        await RateLimiter(ctx.services.redis).hit(key, limit, window_s)


@closed
class SignedIn(TypedDict):
    user: UserOut
    token: str


@closed
class UserReply(TypedDict):
    user: UserOut


@closed
class LoggedOut(TypedDict):
    status: Literal["logged_out"]


@closed
class Revoked(TypedDict):
    user_id: str
    status: Literal["revoked"]


@api.post("/api/auth/register", ANYONE, body=Register, status=201, response=SignedIn)
async def register(ctx: Ctx) -> Response:
    body = await ctx.body(Register)
    await per_address(ctx, "register", ctx.services.settings.registrations_per_address, 3600)
    user = await create_user(
        ctx.services.db, body.handle, body.password, body.display_name, [Role.VIEWER]
    )
    token = ctx.services.tokens.issue(user.id, user.roles)
    return json({"user": user.private(), "token": token}, 201)


@api.post("/api/auth/login", ANYONE, body=Login, response=SignedIn)
async def login(ctx: Ctx) -> Response:
    body = await ctx.body(Login)
    await per_address(ctx, "login", ctx.services.settings.logins_per_address, 60)
    limiter = RateLimiter(ctx.services.redis)
    # Attempts on one handle are counted before the password is checked, in one atomic
    # step: a burst of guesses across processes gets LOGIN_FAILURES_ALLOWED checks, no
    # more. The right password clears the count.
    attempts = ctx.services.keys("ratelimit", "login-failures", body.handle.lower())
    await limiter.hit(attempts, LOGIN_FAILURES_ALLOWED, LOGIN_FAILURE_WINDOW_S)
    async with ctx.services.db.reader() as s:
        user = (
            await s.execute(select(User).where(User.handle == body.handle))
        ).scalar_one_or_none()
    if not await verify_password(user.password_hash if user else None, body.password) or not user:
        raise ApiError(401, "invalid_credentials", "wrong handle or password")
    await limiter.reset(attempts)
    token = ctx.services.tokens.issue(user.id, user.roles)
    return json({"user": user.private(), "token": token})


@api.get("/api/me", LOGGED_IN, response=UserReply)
async def me(ctx: Ctx) -> Response:
    user = await get_user(ctx.services.db, ctx.user.user_id)
    return json({"user": user.private()})


async def revoke_tokens(ctx: Ctx, user_id: str) -> None:
    """Every token the user holds stops working: on this process at once, on every other
    within `core.identity.FRESH_S`."""
    async with ctx.services.db.transaction() as s:
        user = await s.get(User, user_id, with_for_update=True)
        if user is None:
            raise not_found("user", user_id)
        user.tokens_valid_after = utcnow()
    ctx.services.identities.forget(user_id)


@api.post("/api/auth/logout", LOGGED_IN, response=LoggedOut)
async def logout(ctx: Ctx) -> Response:
    """Log out everywhere: every token of the caller is revoked."""
    await revoke_tokens(ctx, ctx.user.user_id)
    return json({"status": "logged_out"})


@api.post("/api/admin/users/{user_id}/revoke-tokens", roles(Role.ADMIN), response=Revoked)
async def admin_revoke_tokens(ctx: Ctx) -> Response:
    """An admin ends every session of a user (a stolen token, a departed staff member)."""
    user_id = ctx.path("user_id")
    await revoke_tokens(ctx, user_id)
    return json({"user_id": user_id, "status": "revoked"})


@api.post("/api/admin/users", roles(Role.ADMIN), body=CreateUser, status=201, response=UserReply)
async def admin_create_user(ctx: Ctx) -> Response:
    body = await ctx.body(CreateUser)
    user = await create_user(
        ctx.services.db, body.handle, body.password, body.display_name, body.roles
    )
    return json({"user": user.private()}, 201)
