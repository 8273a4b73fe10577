"""Fan-out of one live room: Panen's gateway against python-socketio + AsyncRedisManager.

    .venv/bin/python bench/fanout.py [--viewers 1000,5000,10000] [--rates 50,500]
        [--seconds 8] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0]

Two server processes of each system, both pinned to CPU 0; the load generator (this
process, publishing the events, and processes of its own holding the viewer sockets, 8,000
each) pinned to CPU 1. Viewers are split evenly over the two servers. For each audience
size the viewers connect once, then each event rate runs for `--seconds`. Per row:

- frames/s: frames delivered to all viewers per second;
- staleness p50/p99: for a sample of viewers, the age of the newest event in a frame when
  the viewer receives it (the age of the newest totals it can show);
- CPU s per viewer-minute: both servers' CPU time over the window, per viewer per minute;
- KB/conn: the servers' resident memory per idle connection (after subscribing);
- disconnects: viewer sockets that closed during the row;
- gen CPU: the load generator's CPU use during the window, all its processes (100% = its
  whole core: then the numbers would say more about the generator than the servers);
- KB/frame: the mean size of a frame (a Panen ticker frame, a socket.io event) a sampled
  viewer received: what each viewer's phone downloads per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE_EVERY = 50  # one viewer in this many parses frames to measure staleness


# --- a minimal WebSocket client: thousands of them in one process ----------------------


class WsClient(asyncio.Protocol):
    def __init__(self, path: str, host: str, on_text: Callable[[WsClient, bytes], None]) -> None:
        self.path = path
        self.host = host
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = False
        self.frames = 0
        self.sampled = False
        self.stale: list[float] = []
        self.sizes: list[int] = []  # bytes of each frame a sampled viewer got
        self.join_text = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded.done():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            ok = self.buf.startswith(b"HTTP/1.1 101")
            del self.buf[: end + 4]
            if not ok:
                self.upgraded.set_exception(RuntimeError("upgrade refused"))
                return
            self.upgraded.set_result(True)
        buf = self.buf
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            n = buf[1] & 0x7F
            head = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = struct.unpack_from("!H", buf, 2)[0]
                head = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = struct.unpack_from("!Q", buf, 2)[0]
                head = 10
            if len(buf) < head + n:
                return
            payload = bytes(buf[head : head + n])
            del buf[: head + n]
            if opcode == 1:
                self.frames += 1
                self.on_text(self, payload)
            elif opcode == 9:
                self._send(0xA, payload)
            elif opcode == 8:
                self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("lost"))

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = secrets.token_bytes(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def send_text(self, text: str) -> None:
        self._send(1, text.encode())


def now_ms() -> float:
    return time.time() * 1000


def sale_event(order_id: str, session_id: str) -> dict[str, Any]:
    """A paid order as a room hears it, stamped with when it was sent (`t`, for staleness)."""
    return {
        "type": "order_paid",
        "order_id": order_id,
        "session_id": session_id,
        "at": None,
        "listing_id": "lst_bench",
        "quantity": 1,
        "gross": 95_000,
        "pledge": 4_750,
        "currency": "IDR",
        "display_name": "Sari W.",
        "t": now_ms(),
    }


def on_panen(client: WsClient, payload: bytes) -> None:
    if not client.sampled or not payload.startswith(b'{"type":"ticker"'):
        return
    client.sizes.append(len(payload))
    frame = orjson.loads(payload)
    stamps = [e["t"] for e in frame["events"] if "t" in e]
    if stamps:
        client.stale.append(now_ms() - max(stamps))


def on_socketio(client: WsClient, payload: bytes) -> None:
    if payload == b"2":  # engine.io ping
        client.send_text("3")
        return
    if payload.startswith(b"0"):  # engine.io open: connect to the default namespace
        client.send_text("40")
        return
    if payload.startswith(b"40"):  # connected to the namespace: join the room
        client.send_text(client.join_text)
        return
    if client.sampled and payload.startswith(b'42["ev"'):
        client.sizes.append(len(payload))
        event = orjson.loads(payload[2:])[1]
        client.stale.append(now_ms() - event["t"])


# --- servers -----------------------------------------------------------------------------


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


def start_server(cmd: list[str], env: dict[str, str], port: int) -> Proc:
    proc = subprocess.Popen(pinned(cmd, "0"), env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return Proc(proc, port)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{cmd} did not come up")


# --- a run -------------------------------------------------------------------------------


@dataclass
class System:
    name: str  # "panen" or "python-socketio": how its viewers speak
    servers: list[Proc]
    path: str
    join: str  # the text a viewer sends to join the room
    publish: Callable[[dict[str, Any]], Any]
    viewers: list[Viewers] = field(default_factory=list)
    count: int = 0  # viewers connected


# --- viewers, in processes of their own -----------------------------------------------------

PER_PROCESS = 8_000  # a process's open files are limited (20,000 on the bench machine)


class Viewers:
    """A process holding up to PER_PROCESS viewer sockets, pinned to the generator's core and
    driven over its stdin and stdout, one JSON line each way."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> Viewers:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--viewers-process",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=2**26,
        )
        return cls(proc)

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(command) + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"viewers process exited ({command['op']})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask(op="close")
        await self.proc.wait()


async def viewers_process() -> None:
    """The other end of `Viewers`: connect, mark, collect, close."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    clients: list[WsClient] = []
    on_text = on_panen

    async def one(i: int, command: dict[str, Any]) -> None:
        port = command["ports"][i % len(command["ports"])]
        _, client = await loop.create_connection(
            lambda: WsClient(command["path"], f"127.0.0.1:{port}", on_text), "127.0.0.1", port
        )
        await client.upgraded
        client.sampled = i % SAMPLE_EVERY == 0
        if command["system"] == "panen":
            client.send_text(command["join"])
        else:
            client.join_text = command["join"]  # sent once the namespace connect is acknowledged
        clients.append(client)

    def counts() -> dict[str, Any]:
        return {
            "frames": sum(c.frames for c in clients),
            "closed": sum(c.closed for c in clients),
            "cpu": time.process_time(),
        }

    while line := await reader.readline():
        command = orjson.loads(line)
        op = command["op"]
        answer: dict[str, Any] = {}
        if op == "connect":
            on_text = on_panen if command["system"] == "panen" else on_socketio
            first, n = command["first"], command["n"]
            for start in range(first, first + n, 200):
                await asyncio.gather(
                    *(one(i, command) for i in range(start, min(first + n, start + 200)))
                )
            answer = {"connected": len(clients)}
        elif op == "mark":
            for c in clients:
                c.stale.clear()
                c.sizes.clear()
            answer = counts()
        elif op == "collect":
            answer = counts()
            answer["stale"] = [x for c in clients for x in c.stale]
            answer["sizes"] = [x for c in clients for x in c.sizes]
        elif op == "close":
            for c in clients:
                if c.transport is not None:
                    c.transport.close()
        sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
        sys.stdout.buffer.flush()
        if op == "close":
            return


async def connect(system: System, n: int) -> None:
    """n viewers over as many processes as their sockets need, viewer i on server i % 2."""
    ports = [s.port for s in system.servers]
    shares = [min(PER_PROCESS, n - first) for first in range(0, n, PER_PROCESS)]
    system.viewers = [await Viewers.start() for _ in shares]
    await asyncio.gather(
        *(
            v.ask(
                op="connect",
                system=system.name,
                ports=ports,
                path=system.path,
                join=system.join,
                first=k * PER_PROCESS,
                n=share,
            )
            for k, (v, share) in enumerate(zip(system.viewers, shares, strict=True))
        )
    )
    system.count = n
    await asyncio.sleep(2.0)


async def stop_viewers(system: System) -> None:
    await asyncio.gather(*(v.stop() for v in system.viewers))
    system.viewers = []


async def run_rate(system: System, rate: int, seconds: float) -> dict[str, Any]:
    marks = await asyncio.gather(*(v.ask(op="mark") for v in system.viewers))
    closed_before = sum(m["closed"] for m in marks)
    frames_before = sum(m["frames"] for m in marks)
    cpu_before = sum(s.cpu_s() for s in system.servers)
    gen_before = time.process_time() + sum(m["cpu"] for m in marks)
    started = time.monotonic()
    sent = 0
    step = 0.01
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1
        batch = []
        while sent < due:
            sent += 1
            batch.append(system.publish(sale_event(f"o{sent}-{secrets.token_hex(3)}", "ses_bench")))
        if batch:
            await asyncio.gather(*batch)
        await asyncio.sleep(step)
    window = time.monotonic() - started
    await asyncio.sleep(0.5)  # let the last frames land
    cpu = sum(s.cpu_s() for s in system.servers) - cpu_before
    got = await asyncio.gather(*(v.ask(op="collect") for v in system.viewers))
    frames = sum(g["frames"] for g in got) - frames_before
    gen = (time.process_time() + sum(g["cpu"] for g in got) - gen_before) / (window + 0.5)
    stale = sorted(x for g in got for x in g["stale"])
    sizes = [x for g in got for x in g["sizes"]]
    viewers = system.count
    return {
        "system": system.name,
        "viewers": viewers,
        "rate": rate,
        "frames_s": frames / (window + 0.5),
        "p50": statistics.median(stale) if stale else float("nan"),
        "p99": stale[int(len(stale) * 0.99) - 1] if stale else float("nan"),
        "cpu_vm": cpu / (viewers * window / 60),
        "disconnects": sum(g["closed"] for g in got) - closed_before,
        "gen": gen,
        "frame_kb": statistics.mean(sizes) / 1024 if sizes else float("nan"),
    }


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    from core.accounts import create_user
    from core.db import Database
    from core.events import publish
    from core.services import Services
    from core.settings import Settings
    from tests.api import build_world, login

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        os.sched_setaffinity(0, {1})
    tag, db_url = args.tag, args.db_url
    prefix = f"panen_bench_{tag}"
    settings = Settings(database_url=db_url, redis_url=args.redis_url, redis_prefix=prefix)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "REDIS_PREFIX": prefix,
        "PANEN_ENV": "development",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_SECRET_KEY": settings.secret_key,
        "PANEN_TICKER_HZ": str(args.hz),
        "PANEN_LOG_LEVEL": "WARNING",
        "SIO_CHANNEL": f"sio_{tag}",
    }
    rows: list[dict[str, Any]] = []
    services = await Services.start(settings, pool_size=2, jobs=False)
    try:
        db = Database(db_url, pool_size=1)
        await create_user(db, f"admin_{tag}", "correct horse battery", "Admin", ["admin"])
        await db.close()
        import socketio

        sio_manager = socketio.AsyncRedisManager(
            args.redis_url, channel=env["SIO_CHANNEL"], write_only=True
        )
        for viewers in args.viewers:
            system: System | None = None
            # Panen
            if "panen" in args.systems:
                ports = [free_port(), free_port()]
                servers = [
                    start_server([sys.executable, "-m", "panen", "serve", "--port", str(p)], env, p)
                    for p in ports
                ]
                try:
                    async with httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{ports[0]}", timeout=30
                    ) as http:
                        admin = await login(http, f"admin_{tag}")
                        world = await build_world(http, admin.token)
                    topic = f"session:{world.session['id']}"
                    subscribe = orjson.dumps({"type": "subscribe", "topic": topic}).decode()
                    system = System(
                        "panen",
                        servers,
                        "/ws",
                        subscribe,
                        lambda e, t=topic: publish(services, t, e),  # type: ignore[misc]
                    )
                    rss0 = sum(s.rss_kb() for s in servers)
                    await connect(system, viewers)
                    await asyncio.sleep(1.0)
                    kb = (sum(s.rss_kb() for s in servers) - rss0) / viewers
                    for rate in args.rates:
                        row = await run_rate(system, rate, args.seconds)
                        row["kb_conn"] = kb
                        rows.append(row)
                        print_row(row)
                finally:
                    if system is not None:
                        await stop_viewers(system)
                    for s in servers:
                        s.stop()
            # baseline
            if "socketio" in args.systems:
                ports = [free_port(), free_port()]
                uvicorn_cmd = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.fanout_socketio:app",
                    "--log-level",
                    "warning",
                    "--ws",
                    "websockets-sansio",
                    "--ws-per-message-deflate",
                    "false",
                    "--port",
                ]
                servers = [
                    start_server([*uvicorn_cmd, str(p)], {**env, "PYTHONPATH": str(ROOT)}, p)
                    for p in ports
                ]
                try:
                    room = f"room_{tag}"
                    join = '42["join",' + orjson.dumps(room).decode() + "]"

                    async def sio_publish(e: dict[str, Any], r: str = room) -> None:
                        await sio_manager.emit("ev", e, room=r, namespace="/")

                    system = System(
                        "python-socketio",
                        servers,
                        "/socket.io/?EIO=4&transport=websocket",
                        join,
                        sio_publish,
                    )
                    rss0 = sum(s.rss_kb() for s in servers)
                    await connect(system, viewers)
                    await asyncio.sleep(1.0)
                    kb = (sum(s.rss_kb() for s in servers) - rss0) / viewers
                    for rate in args.rates:
                        row = await run_rate(system, rate, args.seconds)
                        row["kb_conn"] = kb
                        rows.append(row)
                        print_row(row)
                finally:
                    if system is not None:
                        await stop_viewers(system)
                    for s in servers:
                        s.stop()
    finally:
        await services.close()
    return rows


HEADER = (
    f"| {'system':<16} | {'viewers':>7} | {'events/s':>8} | {'frames/s':>9} | "
    f"{'p50 ms':>7} | {'p99 ms':>7} | {'CPU s/viewer-min':>16} | {'KB/conn':>7} | "
    f"{'disconnects':>11} | {'gen CPU':>7} | {'KB/frame':>8} |"
)


def print_row(r: dict[str, Any]) -> None:
    print(
        f"| {r['system']:<16} | {r['viewers']:>7} | {r['rate']:>8} | {r['frames_s']:>9.0f} | "
        f"{r['p50']:>7.1f} | {r['p99']:>7.1f} | {r['cpu_vm']:>16.4f} | {r['kb_conn']:>7.1f} | "
        f"{r['disconnects']:>11} | {r['gen'] * 100:>6.0f}% | {r['frame_kb']:>8.1f} |",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--viewers", default="1000,5000,10000")
    p.add_argument("--rates", default="50,500")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--systems", default="panen,socketio")
    p.add_argument("--hz", type=float, default=4.0, help="PANEN_TICKER_HZ of the servers")
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "PANEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("PANEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = p.parse_args()
    args.viewers = [int(x) for x in args.viewers.split(",")]
    args.rates = [int(x) for x in args.rates.split(",")]
    print(HEADER)
    print("|" + "|".join("-" * (len(c)) for c in HEADER.split("|")[1:-1]) + "|", flush=True)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from panen.embedded import drop_database, ensure_database
    from panen.migrate import upgrade

    args.tag = secrets.token_hex(3)
    db_name = f"panen_bench_{args.tag}"
    args.db_url = ensure_database(args.database_url, db_name, fresh=True)
    upgrade(args.db_url)
    try:
        asyncio.run(bench(args))
    finally:
        drop_database(args.database_url, db_name)


if __name__ == "__main__":
    if sys.argv[1:] == ["--viewers-process"]:
        import uvloop

        uvloop.run(viewers_process())
    else:
        main()
