"""Bearer tokens are read by `core.auth.Tokens` itself (PyJWT only issues them): whatever
PyJWT refuses, it refuses with the same code, and what this server issues reads the same."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from typing import Any

import jwt
import orjson
import pytest

from core.auth import Tokens
from core.errors import ApiError

SECRET = "a test secret of forty characters, or so"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: Any, claims: Any, key: str = SECRET, alg: str = "HS256") -> str:
    """A token with exactly this header and these claims, HMAC-signed with `key`."""
    head = b64(orjson.dumps(header))
    body = b64(orjson.dumps(claims))
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64(sig)}"


def pyjwt_says(token: str) -> str:
    """What PyJWT, with the options the server used it with, makes of a token."""
    try:
        jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["sub", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        return "token_expired"
    except jwt.PyJWTError:
        return "invalid_token"
    return "ok"


def we_say(token: str) -> str:
    try:
        Tokens(SECRET, 3600).read(token)
    except ApiError as err:
        assert err.status == 401
        return err.code
    return "ok"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "sub": "usr_a",
        "roles": ["viewer"],
        "iat": now,
        "exp": now + 600,
        "ts": now * 1000,
    }
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


HEADER = {"alg": "HS256", "typ": "JWT"}


def malformed(valid: str) -> list[str]:
    head, body, sig = valid.split(".")
    now = int(time.time())
    return [
        "",
        ".",
        "..",
        valid + ".",
        f"{head}.{body}",
        f"{head}.{body}.{sig}.{sig}",
        f"{head}.{body}.{sig[::-1]}",
        f"{head}.{body}.",
        f"{head}.{body}.{sig}=",
        f"{head}.{body}.{sig}==",
        f"{head}=.{body}.{sig}",
        f" {valid}",
        f"{valid} ",
        valid.replace(".", "\n.", 1),
        f"{head}.{body}.{sig[:-1]}",
        f"{head}.{body}.{sig}A",
        f"{head}.{body}.{sig[:-1]}é",
        f"{head}.{body}.{sig[:-1]}+",
        f"{head}.{body}.{sig[:-1]}/",
        f"{head}.{body[:-1]}!.{sig}",
        f"{b64(b'not json')}.{body}.{sig}",
        jwt.encode(claims(), "another secret of forty characters or so"),
        signed(HEADER, claims(), key="another secret of forty characters or so"),
        signed({"alg": "none", "typ": "JWT"}, claims()),
        signed({"alg": "hs256", "typ": "JWT"}, claims()),
        signed({"alg": "HS512", "typ": "JWT"}, claims(), alg="HS512"),
        f"{b64(orjson.dumps({'alg': 'none'}))}.{b64(orjson.dumps(claims()))}.",
        signed([], claims()),
        signed("HS256", claims()),
        signed(HEADER, []),
        signed(HEADER, "usr_a"),
        signed(HEADER, claims(sub=None)),
        signed(HEADER, claims(exp=None)),
        signed(HEADER, claims(iat=None)),
        signed(HEADER, claims(sub=7)),
        signed(HEADER, claims(exp="soon")),
        signed(HEADER, claims(iat="then")),
        signed(HEADER, claims(exp=now - 1)),
        signed(HEADER, claims(exp=now - 1, iat="then")),
        signed(HEADER, claims(iat=now + 60)),
        signed(HEADER, claims(aud="someone")),
        signed(HEADER, claims(jti=5)),
    ]


def test_a_token_this_server_issued_reads_as_pyjwt_reads_it():
    tokens = Tokens(SECRET, 3600)
    token = tokens.issue("usr_a", ["viewer", "host"])
    theirs = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert tokens.read(token) == (theirs["sub"], theirs["ts"])
    # A token of the older form (no `ts`): issued at its `iat`, in ms.
    older = signed(HEADER, claims(ts=None))
    assert pyjwt_says(older) == "ok"
    assert tokens.read(older) == (
        "usr_a",
        jwt.decode(older, SECRET, algorithms=["HS256"])["iat"] * 1000,
    )


def test_every_token_pyjwt_refuses_is_refused_with_the_same_code():
    valid = Tokens(SECRET, 3600).issue("usr_a", ["viewer"])
    cases = malformed(valid)
    refused = [t for t in cases if pyjwt_says(t) != "ok"]
    assert len(refused) >= len(cases) - 1  # the corpus is of bad tokens (one is padded)
    for token in refused:
        assert we_say(token) == pyjwt_says(token), token


def test_a_token_with_a_second_spelling_of_its_bytes_is_refused():
    """Base64url's last character can carry bits no byte uses: flipping them spells the
    same bytes differently, and a token must have one spelling (PyJWT refuses it too)."""
    valid = Tokens(SECRET, 3600).issue("usr_a", ["viewer"])
    head, body, sig = valid.split(".")
    assert len(sig) % 4 == 3  # 32 bytes: the last character carries 2 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(sig[-1]) ^ 1]
    other = f"{head}.{body}.{sig[:-1]}{twin}"
    assert base64.urlsafe_b64decode(other.split(".")[2] + "=") == base64.urlsafe_b64decode(
        sig + "="
    )
    assert (we_say(other), pyjwt_says(other)) == ("invalid_token", "invalid_token")


def test_what_this_server_never_issues_is_refused_though_pyjwt_would_accept_it():
    now = int(time.time())
    padded = Tokens(SECRET, 3600).issue("usr_a", ["viewer"]) + "="
    for token in (
        padded,
        signed({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims()),
        signed({"alg": "HS256"}, claims(nbf=now - 10)),
        signed(HEADER, claims(exp=float(now + 600))),
        signed(HEADER, claims(exp=str(now + 600))),
    ):
        assert pyjwt_says(token) == "ok"
        assert we_say(token) == "invalid_token"


def test_random_damage_to_a_token_is_never_accepted_where_pyjwt_refuses_it():
    rng = random.Random(18)
    valid = Tokens(SECRET, 3600).issue("usr_a", ["viewer"])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é"
    for _ in range(3000):
        chars = list(valid)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars) + 1)
            match rng.randrange(3):
                case 0 if i < len(chars):
                    chars[i] = rng.choice(alphabet)
                case 1:
                    chars.insert(i, rng.choice(alphabet))
                case _ if i < len(chars):
                    del chars[i]
        token = "".join(chars)
        theirs, ours = pyjwt_says(token), we_say(token)
        assert ours == theirs or (theirs == "ok" and token != valid and ours == "invalid_token"), (
            token,
            theirs,
            ours,
        )


@pytest.mark.parametrize("size", [4097, 100_000])
def test_an_oversized_token_is_refused(size):
    assert we_say("a" * size) == "invalid_token"
