"""Real `panen` processes for integration tests: web servers and workers."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Protocol

import httpx
import pytest
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "panen", "serve", "--port", str(self.port)], env=self.env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"panen serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("panen serve did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: nothing of its own clean-up runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.proc = subprocess.Popen([sys.executable, "-m", "panen", "worker"], env=self.env)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Emulator:
    """`panen emulator`: a local Midtrans (Snap, status, refunds, Iris) on a free port."""

    SERVER_KEY = "SB-Mid-server-panen-tests"
    IRIS: ClassVar[dict[str, str]] = {
        "PANEN_IRIS_CREATOR_KEY": "IRIS-creator-tests",
        "PANEN_IRIS_APPROVER_KEY": "IRIS-approver-tests",
        "PANEN_IRIS_MERCHANT_KEY": "iris-merchant-key-tests",
    }

    def __init__(self, env: dict[str, str], iris_callback: str | None = None) -> None:
        self.env = {**env, "PANEN_MIDTRANS_SERVER_KEY": self.SERVER_KEY, **self.IRIS}
        self.port = free_port()
        self.iris_callback = iris_callback
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings_env(self, public_url: str) -> dict[str, str]:
        """What a `panen` process needs to pay and pay out through this emulator."""
        return {
            "PANEN_MIDTRANS_SERVER_KEY": self.SERVER_KEY,
            "PANEN_MIDTRANS_CLIENT_KEY": "SB-Mid-client-panen-tests",
            "PANEN_MIDTRANS_SNAP_URL": self.base + "/snap/v1",
            "PANEN_MIDTRANS_API_URL": self.base,
            "PANEN_IRIS_URL": self.base + "/iris/api/v1",
            "PANEN_PUBLIC_URL": public_url,
            **self.IRIS,
        }

    def start(self, timeout: float = 20) -> Emulator:
        argv = [sys.executable, "-m", "panen", "emulator", "--port", str(self.port)]
        if self.iris_callback:
            argv += ["--iris-callback", self.iris_callback]
        self.proc = subprocess.Popen(argv, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"panen emulator exited with {self.proc.returncode}")
            try:
                httpx.post(self.base + "/_emulator/payouts", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("panen emulator did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@contextmanager
def running(*procs: Startable) -> Iterator[None]:
    """Each started in turn, and all stopped again (in reverse) however the block ends."""
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in reversed(procs):
            p.stop()


def answering(port: int, within: float = 10) -> None:
    """Until the redis-server on `port` answers PING."""
    client = redis.Redis(port=port)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on {port} did not start")


class ThrowawayRedis:
    """A private redis-server on a free port, without persistence: restarting it loses
    everything, as a crashed cache would. Never the machine's shared Redis."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            pytest.skip("no redis-server binary on this machine")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        answering(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        """Down and up again, empty: as a crashed cache comes back."""
        self.stop()
        self.start()


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.skip(f"no PostgreSQL {name} on this machine")
    return found


class StreamingPair:
    """A PostgreSQL primary and a streaming standby of it (initdb, then pg_basebackup -R) on
    loopback ports, as a deployment with a read replica runs; started for a test. As root,
    the servers run as the `postgres` user (PostgreSQL refuses root)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.home, "postgres", "postgres")
        primary, replica = self.home / "primary", self.home / "replica"
        self._run(
            _pg_bin("initdb"), "-D", str(primary), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.primary_port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.home}'\nwal_level = replica\n"
                "max_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n"
            )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(primary),
            "-l",
            str(self.home / "primary.log"),
            "-w",
            "start",
        )
        self._run(
            _pg_bin("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
        )
        with (replica / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.replica_port}\nhot_standby = on\n")
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(replica),
            "-l",
            str(self.home / "replica.log"),
            "-w",
            "start",
        )

    def stop_replica(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.home / "replica"), "-m", "immediate", "stop")

    def stop(self) -> None:
        for name in ("replica", "primary"):
            if (self.home / name / "postmaster.pid").exists():
                subprocess.run(
                    [
                        *self.as_user,
                        _pg_bin("pg_ctl"),
                        "-D",
                        str(self.home / name),
                        "-m",
                        "immediate",
                        "stop",
                    ],
                    capture_output=True,
                    timeout=60,
                )


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ThrowawayCluster:
    """A Redis Cluster of three primaries, each with one replica, on loopback ports and in
    a directory of its own, without persistence; started for a test. `fail_over` stops a
    primary the way a crashed machine would and waits until its replica has taken over."""

    NODE_TIMEOUT_MS = 1000

    def __init__(self, home: Path, primaries: int = 3) -> None:
        self.home = home
        self.ports = [_cluster_port() for _ in range(primaries * 2)]
        self.primaries = primaries
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.ports[: self.primaries])
        return f"redis+cluster://{seeds}"

    def _binary(self, name: str) -> str:
        found = shutil.which(name) or shutil.which(name.replace("redis", "valkey"))
        if found is None:
            pytest.skip(f"no {name} on this machine")
        return found

    def _start_node(self, port: int) -> None:
        node = self.home / str(port)
        node.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                self._binary("redis-server"),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node / "nodes.conf"),
                "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS),
                # As the README advises: a shard failing over does not stop the others.
                "--cluster-require-full-coverage", "no",
                "--dir", str(node),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        answering(port)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # never leave half a cluster running
            raise

    def _start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        if self.primaries >= 3:
            subprocess.run(
                [
                    self._binary("redis-cli"),
                    "--cluster", "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    "--cluster-replicas", "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
        else:
            self._assemble()
        self.wait_ok()

    def _assemble(self) -> None:
        """Fewer than three primaries, which `redis-cli --cluster create` refuses: give the
        slots out by hand, introduce the nodes, make each second node a replica."""
        firsts, seconds = self.ports[: self.primaries], self.ports[self.primaries :]
        per = 16384 // self.primaries
        for n, port in enumerate(firsts):
            end = 16383 if n == self.primaries - 1 else (n + 1) * per - 1
            redis.Redis(port=port).execute_command("CLUSTER ADDSLOTSRANGE", n * per, end)
        for port in self.ports[1:]:
            redis.Redis(port=port).execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
        for primary, replica in zip(firsts, seconds, strict=True):
            node_id = redis.Redis(port=primary).execute_command("CLUSTER MYID")
            client = redis.Redis(port=replica)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.execute_command("CLUSTER REPLICATE", node_id)
                    break
                except redis.ResponseError:  # not met yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def info(self, port: int) -> dict[str, str]:
        found = redis.Redis(port=port, socket_timeout=2).execute_command("CLUSTER INFO")
        return {str(k): str(v) for k, v in found.items()}

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every running node says the cluster is ok and knows all its primaries, and
        every running replica has finished its first sync (until then a write's WAIT for
        its replica runs into its timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                alive = [port for port, p in self.procs.items() if p.poll() is None]
                infos = [self.info(port) for port in alive]
                links = [redis.Redis(port=port).info("replication") for port in alive]
                if all(
                    i.get("cluster_state") == "ok" and i.get("cluster_size") == str(self.primaries)
                    for i in infos
                ) and all(
                    r["role"] == "master" or r.get("master_link_status") == "up" for r in links
                ):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become ok")

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds `key`'s slot now."""
        any_port = next(port for port, p in self.procs.items() if p.poll() is None)
        client = redis.Redis(port=any_port)
        slot = client.cluster("KEYSLOT", key)
        for start, end, primary, *_ in client.cluster("SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise RuntimeError(f"no primary holds slot {slot}")

    def fail_over(self, port: int, timeout: float = 30) -> int:
        """Kill the primary on `port`; return the port of the replica that took its slots."""
        slot_key = None
        client = redis.Redis(port=port)
        for start, _end, primary, *_ in client.cluster("SLOTS"):
            if int(primary[1]) == port:
                slot_key = start
        self.procs[port].kill()
        self.procs[port].wait(10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            survivor = next(p for p, proc in self.procs.items() if proc.poll() is None)
            try:
                for start, _end, primary, *_ in redis.Redis(port=survivor).cluster("SLOTS"):
                    if start == slot_key and int(primary[1]) != port:
                        self.wait_ok(timeout)
                        return int(primary[1])
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError("no replica took over")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
