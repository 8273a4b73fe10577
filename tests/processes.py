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
from typing import ClassVar

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


@contextmanager
def running(*procs: Server | Worker | Emulator) -> Iterator[None]:
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in reversed(procs):
            p.stop()


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
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

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
