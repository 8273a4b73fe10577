"""A web process's garbage collector, set for thousands of long-lived sockets."""

import gc
import subprocess
import sys

from core import heap
from panen.app import create_app
from tests.conftest import ROOT


async def test_a_started_web_process_froze_its_start_up_objects_and_collects_young_less_often(
    settings,
):
    gc.unfreeze()  # as a fresh process (another app of this session may have settled it)
    gc.set_threshold(700, 10, 10)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # What start-up made is never scanned again; young objects wait for 50,000
        # allocations (docs/benchmarks.md, "The garbage collector").
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (heap.YOUNG, heap.MIDDLE, heap.OLD)


def test_a_settled_process_has_its_orm_configured_before_its_first_query():
    """A fresh interpreter: SQLAlchemy configures mappers on the first query unless start-up
    did; the first request of every server would pay for it."""
    probe = (
        "import panen.app\n"
        "from commerce.orders.models import Order\n"
        "before = Order.__mapper__.configured\n"
        "from core import heap\n"
        "heap.settle()\n"
        "print(before, Order.__mapper__.configured)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["False", "True"]
