"""Where the models run: the device, torch's CPU threads, memory formats, and the task pool
that runs a call's model tasks side by side."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from extract.config import RunConfig


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda when available, else cpu; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_threads(device: torch.device, model_workers: int) -> int:
    """The intra-op CPU threads of ``threads: 0`` (auto): on a CPU, the cores divided among the
    ``model_workers`` threads (at least 1 each); on a GPU, all cores. Two OpenMP pools that
    together outnumber the cores wait on each other at every barrier and run several times
    slower. The decode thread gets no cores of its own: it spends its time in decord's C++
    code, a small fraction of the model time.
    """
    return max(1, cpu_count() // max(1, model_workers)) if device.type == "cpu" else cpu_count()


def configure_threads(config: RunConfig) -> int:
    """Set torch's intra-op CPU threads for a run and return the number set:
    ``config.runtime.threads`` > 0 as given, 0 as ``auto_threads`` says."""
    runtime = config.runtime
    threads = runtime.threads or auto_threads(resolve_device(runtime.device), runtime.model_workers)
    torch.set_num_threads(threads)
    return threads


def memory_format(config: RunConfig, device: torch.device, ndim: int) -> torch.memory_format:
    """Memory format of the ResNet (``ndim`` 4) or I3D (5) weights and inputs.

    I3D goes NDHWC everywhere: oneDNN runs its 3-d convolutions ~25% faster in that layout,
    with the same float32 bits (measured on the tiny preset). ResNet goes NHWC on CUDA only: on
    a CPU the gain is ~10% and the features move by ~2e-6 relative (2e-4 absolute at the
    magnitude ~100 of random-weight features), beyond the 1e-5 we allow a default.
    """
    if not config.runtime.channels_last or (ndim == 4 and device.type != "cuda"):
        return torch.contiguous_format
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def upload(frames: np.ndarray, device: torch.device) -> Tensor:
    """Decoded frames (ndarray[U, H, W, 3] uint8) on ``device``: uint8 Tensor[U, H, W, 3]
    (zero-copy on a CPU, pinned and asynchronous on CUDA)."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames))
    if device.type == "cuda":
        return pixels.pin_memory().to(device, non_blocking=True)
    return pixels.to(device)


class TaskPool:
    """Runs a list of tasks on up to ``workers`` threads (the caller's included).

    Every task computes the same numbers whichever thread runs it; the first error is raised
    in the caller's thread once every started task has ended.
    """

    def __init__(self, workers: int, device: torch.device) -> None:
        self.wanted, self.device = max(1, workers), device
        self._pool: ThreadPoolExecutor | None = None  # helper threads, made on first use
        self._size = 0

    def workers(self) -> int:
        """Threads that run tasks side by side now."""
        if self.device.type == "cpu":
            # Only as many as fit on the cores with their OpenMP pools (see configure_threads).
            return min(self.wanted, max(1, cpu_count() // torch.get_num_threads()))
        return self.wanted

    def run(self, tasks: list[Callable[[], None]]) -> None:
        workers = min(self.workers(), len(tasks))
        if workers <= 1:
            for task in tasks:
                task()
            return
        if self._pool is None or self._size < workers - 1:
            self._pool, self._size = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="model"), workers - 1
        queue, lock, errors = iter(tasks), threading.Lock(), []

        @torch.inference_mode()  # thread-local, like autocast: entered in every worker
        def drain() -> None:
            while not errors:
                with lock:
                    task = next(queue, None)
                if task is None:
                    return
                try:
                    task()
                except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
                    errors.append(e)

        helpers = [self._pool.submit(drain) for _ in range(workers - 1)]
        try:
            drain()
        finally:
            futures.wait(helpers)  # never leave a task running into a retry
        if errors:
            raise errors[0]
