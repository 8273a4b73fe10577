"""The fault-injection soak's short form, on every change: a minute of orders, payments,
refunds, gifts and viewers while web processes and workers are killed, Redis restarts
empty and PostgreSQL restarts; then every invariant is checked (bench/chaos.py; its long
form, five seeds of three minutes, is in docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_a_minute_of_killed_processes_and_restarted_servers_breaks_no_invariant():
    result = subprocess.run(
        [sys.executable, "bench/chaos.py", "--seed", "1", "--duration", "45", "--faults", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=560,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "**VIOLATED**" not in result.stdout
