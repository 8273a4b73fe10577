import subprocess
import sys
from pathlib import Path

from starlette.routing import Route

from panen.app import create_app

ROOT = Path(__file__).resolve().parent.parent


def test_packages_depend_one_way_live_donations_commerce_core():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_every_api_endpoint_declares_who_may_call_it():
    app = create_app()
    api_routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api")]
    assert len(api_routes) > 10
    undeclared = [r.path for r in api_routes if not hasattr(r.endpoint, "panen_access")]
    assert undeclared == []


def test_the_web_app_and_the_worker_each_register_the_charity_side_of_settlement():
    # A process that settled orders without donations loaded would move pledges with no
    # log entry; each entry point must load it by itself, not by luck of import order.
    for entry in ("panen.app", "panen.worker"):
        code = (
            f"import {entry}; from commerce import hooks; "
            "assert hooks._pledge_listeners and hooks._order_listeners"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, f"{entry}: {result.stderr}"
