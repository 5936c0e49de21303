"""Shared helpers for the benchmarks: timing loops that print, never assert."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support: the same local servers the tests use


def per_call_ns(run_batch: Callable[[int], None], batch: int, repeats: int = 7) -> float:
    """Median over ``repeats`` batches of the time per call, in nanoseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run_batch(batch)
        samples.append((time.perf_counter_ns() - start) / batch)
    return statistics.median(samples)
