"""Where the models run: the device, torch's CPU threads, cudnn's mode, memory formats, the
uploads of decoded frames, and the task pool that runs a call's model tasks side by side.

On CUDA the hot loop never waits for the device: frames are copied from pinned memory on a
side stream (``Uploads``), each pool thread queues its tasks on its own stream, and index
tensors go up asynchronously (``passes.to_device``); the host waits only when the features
are read back (``assemble``) and inside torchvision's detector postprocessing.
"""

from __future__ import annotations

import contextlib
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
    """Set torch's intra-op CPU threads and cudnn's mode for a run; return the threads set:
    ``config.runtime.threads`` > 0 as given, 0 as ``auto_threads`` says.

    ``runtime.cudnn``: ``deterministic`` (the default) fixes cudnn's algorithm choice and
    forbids its nondeterministic kernels, so a run repeats the same bits on the same GPU and
    software; ``benchmark`` times candidate algorithms per input shape at start-up and keeps
    the fastest, which can differ between runs (and so can the float rounding).
    """
    runtime = config.runtime
    threads = runtime.threads or auto_threads(resolve_device(runtime.device), runtime.model_workers)
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = runtime.cudnn == "benchmark"
    torch.backends.cudnn.deterministic = runtime.cudnn == "deterministic"
    # float32 stays float32: TF32 matmuls and convolutions would round features to 10-bit mantissas.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return threads


def detector_batch(config: RunConfig, device: torch.device) -> int:
    """Frames per detector pass: ``detector.batch_size``, or for 0 (auto) 8 on CUDA (the chip
    needs batches) and 4 on a CPU (tiny preset, 1 thread, 320 x 240 frames: 967, 811, 843 and
    716 ms a frame at batch 1, 2, 4 and 8 on a loaded 2-core machine; 4 bounds the memory of
    the paper preset's 1000 px inputs)."""
    return config.detector.batch_size or (8 if device.type == "cuda" else 4)


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


class Uploads:
    """Decoded frames of a call on the model device, ``pixels[v]``: uint8 Tensor[U, H, W, 3].

    On a CPU, zero-copy views. On CUDA, copied from pinned memory on a side stream, one event
    per video: reading ``pixels[v]`` makes the reader's stream wait for that video's copy only,
    so the first video's models start while the others are still copied.
    """

    def __init__(self, frames: list[np.ndarray], device: torch.device, stream=None) -> None:
        self._events: list = []
        if device.type != "cuda":
            self._tensors = [torch.from_numpy(np.ascontiguousarray(f)) for f in frames]
            return
        stream.wait_stream(torch.cuda.current_stream(device))  # memory freed by the last call is free
        self._tensors = []
        with torch.cuda.stream(stream):
            for f in frames:
                self._tensors.append(torch.from_numpy(np.ascontiguousarray(f)).pin_memory().to(device, non_blocking=True))
                self._events.append(torch.cuda.Event())
                self._events[-1].record(stream)

    def __len__(self) -> int:
        return len(self._tensors)

    def __getitem__(self, v: int) -> Tensor:
        if self._events:
            torch.cuda.current_stream(self._tensors[v].device).wait_event(self._events[v])
        return self._tensors[v]


class TaskPool:
    """Runs a list of tasks on up to ``workers`` threads (the caller's included).

    Every task computes the same numbers whichever thread runs it; the first error is raised
    in the caller's thread once every started task has ended. On CUDA each thread queues its
    tasks on its own stream (so small batches of several tasks overlap on the chip); the
    streams start after the caller's queued work and the caller's stream waits for them all.
    """

    def __init__(self, workers: int, device: torch.device) -> None:
        self.wanted, self.device = max(1, workers), device
        self._pool: ThreadPoolExecutor | None = None  # helper threads, made on first use
        self._size = 0
        self._streams: list = []  # CUDA: one per thread, made on first use

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
        streams = self._start_streams(workers)

        @torch.inference_mode()  # thread-local, like autocast: entered in every worker
        def drain(stream) -> None:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                while not errors:
                    with lock:
                        task = next(queue, None)
                    if task is None:
                        return
                    try:
                        task()
                    except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
                        errors.append(e)

        helpers = [self._pool.submit(drain, stream) for stream in streams[1:]]
        try:
            drain(streams[0])
        finally:
            futures.wait(helpers)  # never leave a task running into a retry
            if self.device.type == "cuda":
                caller = torch.cuda.current_stream(self.device)
                for stream in streams:
                    caller.wait_stream(stream)
        if errors:
            raise errors[0]

    def _start_streams(self, workers: int) -> list:
        """Per thread its stream (None off CUDA), each after the work the caller has queued."""
        if self.device.type != "cuda":
            return [None] * workers
        while len(self._streams) < workers:
            self._streams.append(torch.cuda.Stream(self.device))
        caller = torch.cuda.current_stream(self.device)
        for stream in self._streams[:workers]:
            stream.wait_stream(caller)
        return self._streams[:workers]
