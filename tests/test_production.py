"""`panen serve` in production, as an operator would start it: it refuses to run on a
secret it was not given, and once it runs the sandbox provider does not exist."""

from __future__ import annotations

import subprocess
import sys

import httpx
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from donations.transparency.signing import load_or_create
from tests.api import live_listing, order, register
from tests.conftest import process_env
from tests.processes import Server, free_port, running


def production_env(settings: Settings) -> dict[str, str]:
    env = {**process_env(settings), "PANEN_ENV": "production"}
    env.pop("PANEN_SANDBOX", None)
    return env


def test_production_without_a_secret_exits_at_once_saying_what_is_missing(
    settings: Settings,
) -> None:
    env = production_env(settings)
    del env["PANEN_SECRET_KEY"]
    done = subprocess.run(
        [sys.executable, "-m", "panen", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "PANEN_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr


async def test_production_with_a_secret_serves_but_has_no_sandbox_to_pay_through(
    settings: Settings, admin_token: str, db: Database
) -> None:
    load_or_create(settings.signing_key_file)  # the operator ran `panen keygen`
    with running(server := Server(production_env(settings))):
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            buyer = await register(http)
            for action in ("approve", "decline"):
                r = await http.post(
                    f"/api/payments/pay_anything/sandbox/{action}", headers=buyer.headers
                )
                assert r.status_code == 404, r.text
            r = await http.post("/api/payments/webhook/sandbox", content=b"{}")
            assert r.status_code == 404, r.text
            world, listing = await live_listing(http, admin_token, stock=3)
            r = await order(http, buyer, listing["id"], key="k1")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "payments_unavailable"
            assert r.headers["retry-after"]
            r = await http.post(
                "/api/donations",
                headers={**buyer.headers, "Idempotency-Key": "k2"},
                json={"charity_id": world.charity["id"], "amount": 50_000, "visibility": "public"},
            )
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "payments_unavailable"
    async with db.reader() as s:
        made = await s.scalar(
            text("SELECT count(*) FROM orders WHERE listing_id = :l"), {"l": listing["id"]}
        )
    assert made == 0
