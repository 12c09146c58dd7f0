"""Seconds per stage of one clip: the one timer every stage reports through (``with timer("tvl1"): ...``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timer:
    """Accumulates wall seconds per named stage; ``seconds`` is what a clip's ``timings`` record."""

    def __init__(self, *stages: str):
        self.seconds: dict[str, float] = dict.fromkeys(stages, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0
