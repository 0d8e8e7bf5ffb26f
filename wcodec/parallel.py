"""Work on several tensors at once. The codecs' numpy kernels and zstd release
the GIL, so threads decode and encode tensors in parallel; results come back in
the order of the input, and the input is drawn only as far as a memory budget
allows (a file written or read tensor by tensor stays so)."""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from .errors import InputError

AHEAD_BYTES = 256 << 20  # what work started ahead of its consumer may hold, by default
MAX_THREADS = 256
_END = object()


def default_threads() -> int:
    """Threads used when a caller does not say: the CPUs this process may run
    on, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def check_threads(threads: int | None) -> int:
    """``threads`` as a positive int (``default_threads()`` for None); InputError otherwise."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be an integer from 1 to {MAX_THREADS} or None, "
                         f"got {threads!r}")
    return threads


def check_ahead(ahead_bytes: int) -> int:
    if isinstance(ahead_bytes, bool) or not isinstance(ahead_bytes, int) or ahead_bytes < 0:
        raise InputError(f"ahead_bytes must be a non-negative integer, got {ahead_bytes!r}")
    return ahead_bytes


def ordered_map(fn: Callable[[Any], Any], items: Iterable, threads: int,
                cost: Callable[[Any], int] = lambda item: 0,
                ahead_bytes: int = AHEAD_BYTES) -> Iterator[Any]:
    """Yield ``fn(item)`` for every item, in order, running the calls on
    ``threads`` worker threads. Items are drawn on the calling thread when they
    can start: while calls are under way, another starts only if its cost
    (``cost(item)``, e.g. bytes it holds) fits within ``ahead_bytes`` with
    theirs, so items costing more run one at a time; the next item is drawn
    early to learn its cost. Every error, from ``fn``, from drawing the items
    or from ``cost``, is raised when its turn comes, as with one thread; then,
    or when the caller stops, calls not yet started are dropped and running
    ones are waited for (so Ctrl-C waits for them too)."""
    if threads == 1:
        for item in items:
            yield fn(item)
        return
    todo = iter(items)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="wcodec")
    pending: deque = deque()  # (cost, future), in input order
    held, upcoming, drawn_all = 0, _END, False

    def fail(exc: Exception) -> None:  # an input error takes its place in the order
        nonlocal drawn_all
        future: Future = Future()
        future.set_exception(exc)
        pending.append((0, future))
        drawn_all = True

    def start_more() -> None:
        nonlocal held, upcoming, drawn_all
        while not drawn_all:
            try:
                if upcoming is _END:
                    upcoming = next(todo, _END)
                    if upcoming is _END:
                        drawn_all = True
                        return
                size = cost(upcoming)
            except Exception as exc:
                return fail(exc)
            if pending and held + size > ahead_bytes:
                return
            pending.append((size, pool.submit(fn, upcoming)))
            held += size
            upcoming = _END

    try:
        start_more()
        while pending:
            size, future = pending.popleft()
            result = future.result()
            held -= size
            start_more()
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
