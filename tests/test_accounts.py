import asyncio
import time

import jwt
import pytest
from sqlalchemy import event, text

from core.auth import Principal, Tokens
from core.errors import ApiError
from core.identity import Identities
from core.ids import new_id
from tests.api import PASSWORD, auth, handle, register


async def test_register_returns_a_viewer_and_a_token_that_works_on_me(client):
    me = await register(client)
    assert me.user["roles"] == ["viewer"]
    r = await client.get("/api/me", headers=me.headers)
    assert r.status_code == 200
    assert r.json()["user"]["id"] == me.id
    assert r.json()["user"]["roles"] == ["viewer"]
    assert "password_hash" not in r.json()["user"]


async def test_login_with_the_right_password_succeeds_and_a_wrong_one_is_401(client):
    me = await register(client)
    ok = await client.post(
        "/api/auth/login", json={"handle": me.user["handle"], "password": PASSWORD}
    )
    assert ok.status_code == 200
    bad = await client.post(
        "/api/auth/login", json={"handle": me.user["handle"], "password": "wrong password"}
    )
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_credentials"
    nobody = await client.post(
        "/api/auth/login", json={"handle": "no_such_user", "password": PASSWORD}
    )
    assert nobody.status_code == 401
    assert nobody.json()["error"]["code"] == "invalid_credentials"


async def test_a_taken_handle_is_a_409(client):
    me = await register(client)
    r = await client.post(
        "/api/auth/register",
        json={"handle": me.user["handle"], "password": PASSWORD, "display_name": "Again"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "handle_taken"


async def test_me_without_a_token_is_401_and_with_a_forged_or_expired_one_too(client, settings):
    assert (await client.get("/api/me")).status_code == 401
    forged = jwt.encode(
        {"sub": "usr_x", "roles": ["admin"], "iat": 0, "exp": 2**31},
        "not-our-secret-not-our-secret-not-our",
        algorithm="HS256",
    )
    r = await client.get("/api/me", headers=auth(forged))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "usr_x", "roles": [], "iat": now - 100, "exp": now - 10},
        settings.secret_key,
        algorithm="HS256",
    )
    r = await client.get("/api/me", headers=auth(expired))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "token_expired")
    r = await client.get("/api/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 401


async def test_only_an_admin_creates_users_with_roles(client, admin_token):
    viewer = await register(client)
    body = {"handle": handle("h"), "password": PASSWORD, "display_name": "H", "roles": ["host"]}
    assert (await client.post("/api/admin/users", json=body)).status_code == 401
    r = await client.post("/api/admin/users", json=body, headers=viewer.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = await client.post("/api/admin/users", json=body, headers=auth(admin_token))
    assert r.status_code == 201
    assert r.json()["user"]["roles"] == ["host"]


async def test_admin_user_creation_refuses_unknown_roles(client, admin_token):
    body = {"handle": handle("h"), "password": PASSWORD, "display_name": "H", "roles": ["emperor"]}
    r = await client.post("/api/admin/users", json=body, headers=auth(admin_token))
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "roles"


async def test_repeated_wrong_passwords_for_one_handle_are_rate_limited_with_retry_after(client):
    me = await register(client)
    other = await register(client)
    wrong = {"handle": me.user["handle"], "password": "not the password"}
    codes = [(await client.post("/api/auth/login", json=wrong)).status_code for _ in range(10)]
    assert codes == [401] * 10
    r = await client.post("/api/auth/login", json=wrong)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "rate_limited"
    # even the right password waits out the window: the guesser must not learn it was right
    right = {"handle": me.user["handle"], "password": PASSWORD}
    assert (await client.post("/api/auth/login", json=right)).status_code == 429
    # other accounts are unaffected
    ok = {"handle": other.user["handle"], "password": PASSWORD}
    assert (await client.post("/api/auth/login", json=ok)).status_code == 200


async def test_logging_out_revokes_every_token_of_the_user_and_a_new_login_works(client):
    me = await register(client)
    other_device = (
        await client.post(
            "/api/auth/login", json={"handle": me.user["handle"], "password": PASSWORD}
        )
    ).json()["token"]
    r = await client.post("/api/auth/logout", headers=me.headers)
    assert r.status_code == 200
    for token in (me.token, other_device):
        r = await client.get("/api/me", headers=auth(token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"
    await asyncio.sleep(0.002)  # a token issued after the logout
    fresh = await client.post(
        "/api/auth/login", json={"handle": me.user["handle"], "password": PASSWORD}
    )
    assert (await client.get("/api/me", headers=auth(fresh.json()["token"]))).status_code == 200


async def test_an_admin_revokes_a_users_tokens_and_no_one_else_may(client, admin_token):
    victim, bystander = await register(client), await register(client)
    r = await client.post(f"/api/admin/users/{victim.id}/revoke-tokens", headers=bystander.headers)
    assert r.status_code == 403
    r = await client.post(f"/api/admin/users/{victim.id}/revoke-tokens", headers=auth(admin_token))
    assert r.status_code == 200
    assert (await client.get("/api/me", headers=victim.headers)).status_code == 401
    assert (await client.get("/api/me", headers=bystander.headers)).status_code == 200
    r = await client.post("/api/admin/users/usr_nobody/revoke-tokens", headers=auth(admin_token))
    assert r.status_code == 404


async def test_roles_come_from_the_database_not_from_what_a_token_claims(client, settings):
    viewer = await register(client)
    claims = jwt.decode(viewer.token, options={"verify_signature": False})
    claims["roles"] = ["admin"]  # signed with the real key, but the user is no admin
    forged = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    r = await client.post(
        "/api/admin/users",
        headers=auth(forged),
        json={"handle": handle(), "password": PASSWORD, "display_name": "x", "roles": ["admin"]},
    )
    assert r.status_code == 403


async def test_a_role_granted_works_without_logging_in_again(client, admin_token):
    user = await register(client)
    r = await client.post(
        "/api/farmers",
        headers=auth(admin_token),
        json={"user_id": user.id, "name": "Kebun", "region": "Garut"},
    )
    assert r.status_code == 201
    r = await client.get("/api/me/farmer", headers=user.headers)  # the old token
    assert r.status_code == 200
    r = await client.post(
        "/api/products",
        headers=user.headers,
        json={
            "farmer_id": r.json()["id"],
            "name": "Kopi",
            "unit": "kg",
            "unit_price": 1000,
            "currency": "IDR",
        },
    )
    assert r.status_code == 201, r.text


async def test_unseen_users_asking_at_once_are_read_in_one_query_each_with_their_own_answer(
    db, settings
):
    """A flash sale's buyers tap at once: their identities are read together, and one
    revoked or missing user fails only their own request."""
    tokens = Tokens(settings.secret_key, 3600)
    ids = [new_id("usr") for _ in range(40)]
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO users (id, handle, display_name, password_hash, roles)"
                " VALUES (:id, :h, :h, 'x', :roles)"
            ),
            [
                {"id": u, "h": handle(), "roles": ["viewer", "host"] if n == 0 else ["viewer"]}
                for n, u in enumerate(ids)
            ],
        )
    asked = [tokens.issue(u, ["viewer"]) for u in ids]
    await asyncio.sleep(0.002)  # tokens_valid_after is later than their issue time
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE users SET tokens_valid_after = now() WHERE id = :id"), {"id": ids[1]}
        )
    asked.append(tokens.issue(new_id("usr"), ["viewer"]))  # a user that does not exist

    reads: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if "FROM users" in statement:
            reads.append(statement)

    identities = Identities(db, tokens)
    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        answers = await asyncio.gather(
            *(identities.principal(t) for t in asked), return_exceptions=True
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len(reads) <= 2, reads  # the first read leaves alone, the rest together
    assert isinstance(answers[0], Principal) and answers[0].roles == {"viewer", "host"}
    assert isinstance(answers[1], ApiError) and answers[1].code == "token_revoked"
    assert isinstance(answers[-1], ApiError) and answers[-1].code == "invalid_token"
    assert all(
        isinstance(a, Principal) and a.user_id == u and a.roles == {"viewer"}
        for a, u in zip(answers[2:-1], ids[2:], strict=True)
    )


async def test_a_token_read_before_still_expires_on_time_and_a_tampered_one_is_refused(settings):
    tokens = Tokens(settings.secret_key, 1)
    token = tokens.issue("usr_a", ["viewer"])
    assert tokens.read(token)[0] == "usr_a"
    assert tokens.read(token)[0] == "usr_a"  # the second read is from memory
    head, body, sig = token.split(".")
    forged = jwt.encode(
        {"sub": "usr_b", "iat": 1, "exp": 2**40}, "another secret, 32 bytes or more long"
    )
    for bad in (f"{head}.{body}.{sig[::-1]}", forged):
        with pytest.raises(ApiError) as refused:
            tokens.read(bad)
        assert refused.value.code == "invalid_token"
    await asyncio.sleep(2.1)  # past its expiry, whatever second it was issued in
    with pytest.raises(ApiError) as expired:
        tokens.read(token)
    assert expired.value.code == "token_expired"
