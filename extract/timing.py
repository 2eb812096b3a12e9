"""Optional per-stage wall-clock timing for the benchmark (``extract bench``).

The extractor and the local executor call ``timer(name)`` around each stage. By default the
timer is :data:`NO_TIMER`, whose sections cost one attribute lookup and an empty context
manager. A :class:`StageTimer` adds up seconds per stage; on CUDA it synchronizes the device
at both ends of a section, so that asynchronous kernels are charged to the stage that
launched them (this slows the GPU pipeline a little: use it to measure, not in production).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext

__all__ = ["NO_TIMER", "NullTimer", "StageTimer"]

_NULL = nullcontext()


class NullTimer:
    """Times nothing; ``with timer("resnet"):`` is (almost) free."""

    enabled = False

    def __call__(self, name: str) -> AbstractContextManager:
        return _NULL

    def add(self, name: str, seconds: float) -> None:
        pass


NO_TIMER = NullTimer()


class StageTimer:
    """Adds up the seconds spent in each named section, from any thread.

    Args:
        cuda_sync: call ``torch.cuda.synchronize()`` when a section starts and ends.
    """

    enabled = True

    def __init__(self, *, cuda_sync: bool = False) -> None:
        self.cuda_sync = cuda_sync
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def __call__(self, name: str) -> AbstractContextManager:
        return _Section(self, name)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] += seconds
            self.calls[name] += 1

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()

    def _sync(self) -> None:
        if self.cuda_sync:
            import torch

            torch.cuda.synchronize()


class _Section:
    __slots__ = ("timer", "name", "start")

    def __init__(self, timer: StageTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.timer._sync()
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.timer._sync()
        self.timer.add(self.name, time.perf_counter() - self.start)
