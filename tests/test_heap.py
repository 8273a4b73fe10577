"""A web process's garbage collector, set for thousands of long-lived sockets."""

import gc

from core import heap
from panen.app import create_app


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
