import ast
import os
import subprocess
import sys
from pathlib import Path

from starlette.routing import Route

from panen.app import create_app

ROOT = Path(__file__).resolve().parent.parent


def test_packages_depend_one_way_and_the_flows_sit_above_commerce_and_donations():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


PACKAGES = ("core", "commerce", "donations", "live", "panen")


def test_nothing_is_imported_only_for_its_side_effects():
    # A module imported for what importing it does (registering a listener, a route)
    # hides a step of a flow; every import here is used by name.
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("import ", "from ")) and "noqa: F401" in line
    ]
    assert found == []


def _root_call(node: ast.expr) -> str:
    """`update` for `update(T).where(…).values(…)`: the call a chain of calls starts from."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return node.id if isinstance(node, ast.Name) else ""


def _status_writes(path: Path) -> list[int]:
    """Lines that change some object's `status` (`x.status = …`, `update(…).values(status=…)`,
    SQL `SET status`). Creating a row in its first state is not a change, and an HTTP
    error's own status is not a lifecycle's."""
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr == "status"
                    and not (isinstance(t.value, ast.Name) and t.value.id == "self")
                ):
                    lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and any(k.arg == "status" for k in node.keywords)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and _root_call(node.func.value) == "update"
        ) or (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "SET status" in node.value
        ):
            lines.append(node.lineno)
    return lines


def test_every_status_is_written_by_its_lifecycle_module_only():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "lifecycle.py"
        and "migrations" not in path.parts
        # The emulator plays Midtrans: the statuses it writes are Midtrans's, not ours.
        and path != ROOT / "panen" / "emulator.py"
        for n in _status_writes(path)
    ]
    assert found == []


def test_each_lifecycle_knows_exactly_the_states_its_table_allows():
    from commerce.orders.lifecycle import ORDER
    from commerce.payments.lifecycle import PAYMENT
    from commerce.payouts.lifecycle import PAYOUT
    from commerce.sessions.lifecycle import SESSION
    from commerce.shipping.lifecycle import SHIPMENT
    from donations.gifts.lifecycle import GIFT
    from donations.sponsors.lifecycle import TOP_UP
    from panen.models import metadata

    tables = metadata().tables
    for lifecycle, table in (
        (ORDER, "orders"),
        (PAYMENT, "payments"),
        (PAYOUT, "payouts"),
        (SESSION, "sessions"),
        (SHIPMENT, "shipments"),
        (GIFT, "donations"),
        (TOP_UP, "sponsor_top_ups"),
    ):
        checks = [
            str(c.sqltext)
            for c in tables[table].constraints
            if getattr(c, "name", "") and str(c.name).endswith("known_status")
        ]
        assert checks == [f"status IN ({lifecycle.sql_values()})"], (table, checks)


def test_every_api_endpoint_declares_who_may_call_it():
    app = create_app()
    api_routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api")]
    assert len(api_routes) > 10
    undeclared = [r.path for r in api_routes if not hasattr(r.endpoint, "panen_access")]
    assert undeclared == []


def test_a_worker_process_knows_every_table_so_its_flushes_resolve_foreign_keys():
    """The worker imports only its jobs; a payout's row names `farmers`, which nothing it
    imported registered, so the daily payout run failed there (and only there)."""
    script = (
        "import panen.worker\n"
        "from core.db import Base\n"
        "tables = set(Base.metadata.tables)\n"
        "from panen.models import metadata\n"
        "print(sorted(set(metadata().tables) - tables))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PANEN_ENV": "development"},
    )
    assert out.stdout.strip() == "[]"
