"""Registration, login, the current user, and admin-created accounts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from core.auth import ROLES, Role, hash_password, verify_password
from core.db import Database
from core.errors import ApiError, bad_request, conflict, not_found
from core.http import ANYONE, LOGGED_IN, Api, Body, Ctx, json, roles
from core.ids import new_id
from core.models import User
from core.ratelimit import RateLimiter

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
    """Add a role to a user inside the caller's transaction (their next token carries it)."""
    user = await s.get(User, user_id, with_for_update=True)
    if user is None:
        raise not_found("user", user_id)
    if role not in user.roles:
        user.roles = sorted({*user.roles, role})
    return user


api = Api()


@api.post("/api/auth/register", ANYONE)
async def register(ctx: Ctx) -> Response:
    body = await ctx.body(Register)
    user = await create_user(
        ctx.services.db, body.handle, body.password, body.display_name, [Role.VIEWER]
    )
    token = ctx.services.tokens.issue(user.id, user.roles)
    return json({"user": user.private(), "token": token}, 201)


@api.post("/api/auth/login", ANYONE)
async def login(ctx: Ctx) -> Response:
    body = await ctx.body(Login)
    limiter = RateLimiter(ctx.services.redis)
    # Failed attempts are counted per handle, so guessing one account's password is slow
    # while everyone else logs in as usual.
    failures = ctx.services.keys("ratelimit", "login-failures", body.handle.lower())
    if await limiter.over(failures, LOGIN_FAILURES_ALLOWED):
        await limiter.hit(failures, LOGIN_FAILURES_ALLOWED, LOGIN_FAILURE_WINDOW_S)
    async with ctx.services.db.reader() as s:
        user = (
            await s.execute(select(User).where(User.handle == body.handle))
        ).scalar_one_or_none()
    if not await verify_password(user.password_hash if user else None, body.password) or not user:
        await limiter.hit(failures, LOGIN_FAILURES_ALLOWED, LOGIN_FAILURE_WINDOW_S)
        raise ApiError(401, "invalid_credentials", "wrong handle or password")
    await limiter.reset(failures)
    token = ctx.services.tokens.issue(user.id, user.roles)
    return json({"user": user.private(), "token": token})


@api.get("/api/me", LOGGED_IN)
async def me(ctx: Ctx) -> Response:
    user = await get_user(ctx.services.db, ctx.user.user_id)
    return json({"user": user.private()})


@api.post("/api/admin/users", roles(Role.ADMIN))
async def admin_create_user(ctx: Ctx) -> Response:
    body = await ctx.body(CreateUser)
    user = await create_user(
        ctx.services.db, body.handle, body.password, body.display_name, body.roles
    )
    return json({"user": user.private()}, 201)
