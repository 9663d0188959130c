"""Process-wide performance settings of the server (``visio serve``, and the benchmark).

CPython's cyclic garbage collector runs a young collection every 700 net allocations of
container objects, and a full one, walking every object of the process, once enough of
them have survived. A slot search allocates tens of thousands of short-lived containers
(rows, intervals, calendars, slots): with the default settings a search pays for several
young collections, and now and then for a full walk of everything the server built at
start-up (modules, ORM mappers, the application), which is most of its worst latencies.

:func:`tune_gc` is what the server does once, after start-up: it freezes the objects
alive at that point (they live as long as the process; full collections then skip them)
and raises the thresholds so that collections are rarer. Garbage without cycles is still
freed at once by reference counting; only cyclic garbage waits a little longer.
"""

from __future__ import annotations

import gc

__all__ = ["DEFAULT_GC_THRESHOLDS", "SERVER_GC_THRESHOLDS", "tune_gc"]

#: CPython's defaults: (young collection every N net allocations, every N young
#: collections a middle one, every N middle ones a full one).
DEFAULT_GC_THRESHOLDS = (700, 10, 10)

#: The server's: a young collection every 50,000 net allocations (a few requests), a
#: middle one every 20 of those, a full one every 100 middle ones (CPython also waits
#: until the survivors since the last full collection reach a quarter of the rest).
SERVER_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = SERVER_GC_THRESHOLDS) -> None:
    """Apply the server's garbage-collector settings; call once start-up is done.

    Collects first (so that start-up's garbage is not frozen with it), freezes every
    surviving object into the permanent generation, then sets ``thresholds``.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
