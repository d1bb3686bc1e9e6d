"""Timing shared by the benchmarks: the best of a few runs, in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeat: int, run: Callable[[], object], warm_up: bool = False) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``run``; ``warm_up`` first runs it untimed."""
    if warm_up:
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)
