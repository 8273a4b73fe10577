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
