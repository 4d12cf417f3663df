"""One bounded thread pool for every fan-out: storing frames, reading, downloading, verifying.

The work items are taken from an iterable lazily, in the calling thread (a
splitter's frame generator is never touched by two threads), and at most
``2 x workers`` are in flight, so memory holds a bounded number of frames
whatever the acquisition's size. Results reach ``on_result`` in the calling
thread as they complete; the first error cancels what has not started and
is raised.

The encoding and hashing threads are CPU-bound (zlib, ISA-L and hashlib
release the GIL); transfers wait on a disk or a network. Hence two defaults,
owned here: see :func:`default_workers`.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Callable, Iterable, Optional, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

ENCODE = "encode"  # CPU-bound: encoding and hashing frames
TRANSFER = "transfer"  # I/O-bound: fetching, copying and checking objects


def default_workers(kind: str, store_workers: Optional[int] = None) -> int:
    """Threads for ``kind`` of work when the user chose none.

    Encoding: one per core (at least 2), since each thread keeps a core busy;
    a store with latency (``store_workers``, its ``transfer_workers``) raises
    that, as the same threads wait on its puts. Transfers: the store's own
    number, else two per core (at least 4): reads decode as they fetch, and
    more threads than that only switch (docs/performance.md, "Tuning").
    """
    cores = os.cpu_count() or 1
    if kind == ENCODE:
        return max(2, cores, store_workers or 0)
    return store_workers or max(4, 2 * cores)


def run_bounded(task: Callable[[Item], Result], items: Iterable[Item], workers: int, *,
                on_result: Optional[Callable[[Result], None]] = None,
                name: str = "imagingdb") -> None:
    """Run ``task`` over ``items`` on ``workers`` threads, at most 2 x ``workers`` in flight."""
    limit = 2 * workers
    with cf.ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        pending: set[cf.Future] = set()
        try:
            for item in items:
                if len(pending) >= limit:
                    done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    _hand_over(done, on_result)
                pending.add(pool.submit(task, item))
                done = {future for future in pending if future.done()}
                if done:  # collected as they come, so progress keeps up with the work
                    pending -= done
                    _hand_over(done, on_result)
            while pending:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                _hand_over(done, on_result)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _hand_over(done: Iterable[cf.Future], on_result: Optional[Callable[[Result], None]]) -> None:
    for future in done:
        result = future.result()  # a worker's error is raised here, in the calling thread
        if on_result is not None:
            on_result(result)
