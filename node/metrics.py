"""Timing histograms kept by the node (the pipeline thread observes, any thread reads).

The node's state carries them as a `metrics` section (plain numbers, JSON-safe); web
workers render that in Prometheus text (web/metrics.py).
"""

from __future__ import annotations

import threading

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """Cumulative bucket counts; `observe` from one thread, `snapshot` from any."""

    def __init__(self, buckets: tuple[float, ...] = SECONDS_BUCKETS):
        self.buckets = buckets
        self._counts = [0] * len(buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"buckets": [[b, c] for b, c in zip(self.buckets, self._counts)],
                    "sum": self._sum, "count": self._count}

