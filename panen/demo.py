"""`panen demo`: the whole system on embedded servers, seeded, on one laptop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from panen.embedded import EmbeddedServers, ensure_database
from panen.seed import DEMO_PASSWORD, Client, seed


def _wait_ready(base: str, procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a process of the demo exited while starting; see its output")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the web server did not become ready in time")


async def _is_seeded(database_url: str) -> bool:
    from sqlalchemy import select

    from commerce.sessions.models import LiveSession
    from core.db import Database

    db = Database(database_url, pool_size=1)
    try:
        async with db.reader() as s:
            return (await s.execute(select(LiveSession.id).limit(1))).first() is not None
    finally:
        await db.close()


async def _create_admin(database_url: str) -> None:
    from core.accounts import create_user
    from core.db import Database

    db = Database(database_url, pool_size=1)
    try:
        await create_user(db, "admin", DEMO_PASSWORD, "Admin", ["admin"])
    finally:
        await db.close()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def run_demo(*, port: int, home: str, simulate: int = 0) -> int:
    base = f"http://127.0.0.1:{port}"
    if _answers(base):
        # A demo is running there already: viewers join it, not a second system beside it.
        if not simulate:
            print(f"a demo is already running at {base}; use --port for another", file=sys.stderr)
            return 1
        print(f"a demo is running at {base}: {simulate} simulated viewers join it")
        try:
            return subprocess.call([sys.executable, "-m", "panen.simulate", base, str(simulate)])
        except KeyboardInterrupt:
            return 0
    servers = EmbeddedServers(Path(home))
    print("starting embedded PostgreSQL and Valkey under", Path(home).resolve())
    pg_server, redis_url = servers.start()
    database_url = ensure_database(pg_server, "panen")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PANEN_SIGNING_KEY_FILE": str(Path(home).resolve() / "signing-key.pem"),
        # The demo is a development machine by choice: its public key, the sandbox, and no
        # per-address limits (every simulated viewer comes from this one address).
        "PANEN_ENV": "development",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
    }
    # Midtrans, played by `panen emulator` on the next port: the room offers QRIS, virtual
    # accounts and e-wallets beside the sandbox, and farmers are paid through its Iris.
    gateway = f"http://127.0.0.1:{port + 1}"
    env.update(
        {
            "PANEN_PAYMENT_PROVIDERS": "sandbox,midtrans",
            "PANEN_MIDTRANS_SERVER_KEY": "SB-Mid-server-panen-demo",
            "PANEN_MIDTRANS_CLIENT_KEY": "SB-Mid-client-panen-demo",
            "PANEN_MIDTRANS_SNAP_URL": f"{gateway}/snap/v1",
            "PANEN_MIDTRANS_API_URL": gateway,
            "PANEN_IRIS_URL": f"{gateway}/iris/api/v1",
            "PANEN_PAYOUT_PROVIDER": "iris",
            "PANEN_IRIS_CREATOR_KEY": "IRIS-creator-panen-demo",
            "PANEN_IRIS_APPROVER_KEY": "IRIS-approver-panen-demo",
            "PANEN_IRIS_MERCHANT_KEY": "iris-merchant-panen-demo",
            "PANEN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # A demo's sales can be paid out the same hour.
            "PANEN_COMPLETE_AFTER_S": "60",
        }
    )
    os.environ.update(env)

    from panen.migrate import upgrade

    upgrade(database_url)
    first_run = not asyncio.run(_is_seeded(database_url))
    if first_run:
        # A run that stopped halfway through seeding leaves no session: start clean.
        database_url = ensure_database(pg_server, "panen", fresh=True)
        upgrade(database_url)
        asyncio.run(_create_admin(database_url))

    python = sys.executable
    emulator = [python, "-m", "panen", "emulator", "--port", str(port + 1), "--iris-auto-complete"]
    emulator += ["--iris-callback", f"{base}/api/payouts/callback/iris"]
    procs: list[subprocess.Popen[bytes]] = [
        subprocess.Popen(emulator, env=env),
        subprocess.Popen([python, "-m", "panen", "serve", "--port", str(port)], env=env),
        subprocess.Popen([python, "-m", "panen", "worker"], env=env),
    ]

    def stop(*_: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        servers.stop()

    try:
        _wait_ready(base, procs)
        admin = Client(base).login("admin")
        if first_run:
            seed(base, admin)
        live = admin.call("GET", "/api/sessions?status=live")["sessions"]
        print()
        print("Panen demo is running. Open:")
        print(f"  {base}/                    live and upcoming sessions")
        for s in live:
            print(f"  {base}/sessions/{s['id']}   {s['title']}")
            print(f"  {base}/host/sessions/{s['id']}   (host console, log in as host_rina)")
        print(f"  {base}/api/sessions?status=live   the API ({base}/docs to read it)")
        print(f"  {gateway}   Midtrans, emulated: pay QRIS or a virtual account on its page")
        print(f"Demo users (password {DEMO_PASSWORD!r}): admin, host_rina, pak_budi, ibu_siti,")
        print("  yayasan_pelita (charity admin), sponsor_bank_desa, viewer_andi.")
        print("Ctrl-C stops everything.")
        if simulate:
            # Its own process, so the simulated load does not share the server's event loop.
            procs.append(
                subprocess.Popen([python, "-m", "panen.simulate", base, str(simulate)], env=env)
            )
            print(f"{simulate} simulated viewers are watching, chatting, buying and donating.")
        sys.stdout.flush()
        signal.signal(signal.SIGTERM, _interrupt)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process of the demo stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
