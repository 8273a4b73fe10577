"""The cyclic garbage collector, tuned for a long-lived server holding thousands of sockets.

CPython's defaults (a young collection every 700 allocations, a full one when a quarter
more objects have survived) were measured costing a `panen serve` with 8,000 signed-in
sockets about a quarter of its CPU in a flash sale, in full collections of ~0.3 s each:
every object of every socket, and of every module, scanned again and again, with the
event loop stopped for the whole pass (a frame 300 ms late). Two changes, measured in
bench/flash_sale.py and bench/settle.py (docs/benchmarks.md, "The garbage collector"):

- What start-up made (modules, mappers, compiled statements, the app) is frozen: it lives
  as long as the process and is never scanned again.
- Young collections wait for many more allocations, so the objects of a request in
  flight (alive across a few awaits, dead a millisecond later) die young instead of
  being promoted and swelling the old generation.
"""

from __future__ import annotations

import gc

from sqlalchemy.orm import configure_mappers

YOUNG = 50_000  # allocations between young collections (CPython: 700)
MIDDLE = 20  # young collections between middle ones (CPython: 10)
OLD = 10  # as CPython: a full collection still waits for 25% more long-lived objects


def settle() -> None:
    """Call once start-up is done, before the process takes load: in a web process after
    its services started, in a worker after its start-up hook.

    The ORM's mappers are configured first (SQLAlchemy does it on the first query
    otherwise: ~40 ms of the first request, in a stampede every server's), so that what
    they build is frozen with the rest."""
    configure_mappers()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
