"""Decoding in child processes, ahead of the models, with crashes contained: ``DecodePool``.

Each child is the one process of its own ``ProcessPoolExecutor``, forked from a server that has
torch and decord loaded once (``forkserver``): starting one is cheap. A crash inside native
decoder code (a segfault) then kills a child, not the run: every video (or part) queued in that
child is decoded again alone in a fresh one, and the one that crashes again fails with
``CRASHED``. A long video is opened in a child, which keeps it open and decodes its parts there
in order, the next one while the models run on the current one (``ChildStream``). Frames come
back through shared memory (``extract.decoded.send_frames``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.datasets.base import VideoRecord
from extract.decoded import from_row, receive_frames, remove_frames, send_frames, stream_row, to_row
from extract.lifetime import die_with_parent
from extract.probe import DecodeError
from extract.sampling import SamplingConfig
from extract.store import VideoResult
from extract.timing import NO_TIMER, NullTimer, StageTimer
from extract.video import DecodeConfig, DecodedVideo, VideoFile, open_video
from extract.worker import decode_record

CRASHED = "decoder crashed: the decoding process died (a segfault or abort in native decoder code)"

# In a child: the long videos it has opened, by key, so that their parts decode in order from
# one reader. A stream the parent abandoned (a model error) is dropped past this many.
_STREAMS: dict[str, VideoFile] = {}
_MAX_STREAMS = 8


def decode_in_child(record: VideoRecord, sampling: SamplingConfig, config: DecodeConfig,
                    reader: int | None = None) -> tuple[dict, float]:
    """``decode_record`` as a child runs it: (its ``extract.decoded`` row, seconds). A long video
    stays open here for its parts; frames go to ``reader`` through shared memory (None: pickled)."""
    start = time.perf_counter()
    decoded = decode_record(record, sampling, config)
    if isinstance(decoded, VideoFile):
        _keep(record.key, decoded)
        row = stream_row(record.key, str(record.path), decoded)
    else:
        row = send_frames(to_row(record.key, str(record.path), decoded), reader)
    return row, time.perf_counter() - start


def decode_part_in_child(record: VideoRecord, sampling: SamplingConfig, config: DecodeConfig, index: int,
                         reader: int | None = None) -> tuple[dict, float]:
    """Part ``index`` of a long video as a child decodes it: (its row, seconds). A child that has
    not opened the video (a fresh one, after a crash) opens it and decodes from its start."""
    start = time.perf_counter()
    video = _STREAMS.pop(record.key, None)
    try:
        if video is None:
            video = open_video(record.path, sampling, config)
        part: DecodedVideo | VideoResult = video.part(index)
    except Exception as e:  # noqa: BLE001 - a part that fails to decode fails this video only
        reason = e.reason if isinstance(e, DecodeError) else f"decoder error: {type(e).__name__}: {e}"
        part = VideoResult(record.key, str(record.path), reason=reason)
    else:
        if index + 1 < video.num_parts:
            _keep(record.key, video)
    return send_frames(to_row(record.key, str(record.path), part), reader), time.perf_counter() - start


def _keep(key: str, video: VideoFile) -> None:
    _STREAMS[key] = video
    while len(_STREAMS) > _MAX_STREAMS:
        _STREAMS.pop(next(iter(_STREAMS))).close()


def _child_init() -> None:
    """In each decoding child: die with the forkserver (its parent), which dies with the run; ignore
    Ctrl-C, which reaches the whole process group: the run handles it and closes this child."""
    import signal

    die_with_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _forkserver() -> multiprocessing.context.ForkServerContext:
    """The context the decoding children fork from, its server preloading what they need."""
    context = multiprocessing.get_context("forkserver")
    # forkserver_init first: the server dies with this process; torch before decord: see video._decord
    context.set_forkserver_preload(["extract.forkserver_init", "torch", "decord", "extract.decode_pool"])
    return context


def start_forkserver() -> None:
    """Start the decoding children's server now, without waiting for it: its imports of torch
    and decord (1.3-2.6 s on a 2-vCPU machine) then overlap the caller's model building, and
    the first ``DecodePool`` starts its children in about 20 ms instead."""
    from multiprocessing import forkserver

    _forkserver()
    forkserver.ensure_running()


@dataclass
class Handle:
    """A submitted decode: the child's slot, the executor it went to, its future."""

    slot: int
    pool: ProcessPoolExecutor
    future: Future


class DecodePool:
    """Videos decoded in ``workers`` child processes; the caller takes them in its own order.

    Each video goes to the child with the fewest queued; ``result`` waits for one. Every child
    dies with this process (``lifetime.die_with_parent``, through the forkserver).

    Args:
        workers: child processes decoding side by side.
        decode, decode_part: the children's functions (``decode_in_child``,
            ``decode_part_in_child``, or ones with their signatures: tests crash them).
        shared_memory: frames come back through shared-memory files (else pickled).
        timer: gets each decode's seconds (video or part) as section ``decode``.
    """

    def __init__(self, sampling: SamplingConfig, config: DecodeConfig, workers: int = 1, *,
                 decode: Callable[..., tuple[dict, float]] = decode_in_child,
                 decode_part: Callable[..., tuple[dict, float]] = decode_part_in_child,
                 shared_memory: bool = True, timer: NullTimer | StageTimer = NO_TIMER) -> None:
        if workers < 1:
            raise ValueError(f"decode workers must be >= 1, got {workers}")
        self.sampling, self.config, self.timer = sampling, config, timer
        self._decode, self._decode_part = decode, decode_part
        self._reader = os.getpid() if shared_memory else None
        remove_frames()  # those of runs that died before reading them
        self._children: list[ProcessPoolExecutor] = []
        self._queued: list[int] = []  # per child: decodes submitted and not yet taken
        try:
            for _ in range(workers):
                self._children.append(self._start())
                self._queued.append(0)
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self._children)

    def child_pids(self) -> list[int]:
        """The decoding children's process ids (for measurements)."""
        return [pid for pool in self._children for pid in pool._processes]

    @staticmethod
    def _start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=_forkserver(), initializer=_child_init)
        try:
            pool.submit(os.getpid).result()
        except BrokenProcessPool:
            raise RuntimeError(
                "the decoding child process could not start. A script that runs the pipeline needs "
                "`if __name__ == '__main__':` around its work (children import the main module again)"
            ) from None
        return pool

    def submit(self, record: VideoRecord) -> Handle:
        """Queue ``record`` on the least busy child."""
        slot = min(range(len(self._children)), key=self._queued.__getitem__)
        return self._send(slot, self._decode, record)

    def result(self, record: VideoRecord, handle: Handle) -> tuple[DecodedVideo | ChildStream | VideoResult, float]:
        """``record`` decoded (or opened, to stream), or its failed result; and the decode seconds."""
        row, seconds = self._row(handle, self._decode, record)
        if row["stream"]:
            return ChildStream(self, record, row, handle.slot), seconds
        return from_row(row, self.sampling), seconds

    def row(self, record: VideoRecord) -> dict:
        """``record``'s ``extract.decoded`` row, decoded in a child (frames in this process)."""
        return self._row(self.submit(record), self._decode, record)[0]

    def _send(self, slot: int, fn: Callable, record: VideoRecord, *args) -> Handle:
        pool = self._children[slot]
        try:
            future = pool.submit(fn, record, self.sampling, self.config, *args, self._reader)
        except BrokenProcessPool:  # it died on an earlier video, not taken yet: that one is retried in result
            pool = self._children[slot] = self._start()
            future = pool.submit(fn, record, self.sampling, self.config, *args, self._reader)
        self._queued[slot] += 1
        return Handle(slot, pool, future)

    def _row(self, handle: Handle, fn: Callable, record: VideoRecord, *args) -> tuple[dict, float]:
        self._queued[handle.slot] -= 1
        try:
            row, seconds = handle.future.result()
        except BrokenProcessPool:
            if self._children[handle.slot] is handle.pool:
                self._children[handle.slot] = self._start()
            row, seconds = self._alone(fn, record, *args)
        self.timer.add("decode", seconds)
        return receive_frames(row), seconds

    def _alone(self, fn: Callable, record: VideoRecord, *args) -> tuple[dict, float]:
        with self._start() as pool:
            try:
                return pool.submit(fn, record, self.sampling, self.config, *args, self._reader).result()
            except BrokenProcessPool:
                return to_row(record.key, str(record.path), VideoResult(record.key, str(record.path), reason=CRASHED)), 0.0

    def close(self) -> None:
        for pool in self._children:
            pool.shutdown(cancel_futures=True)
        if self._reader is not None:
            remove_frames(self._reader)  # decoded ahead and never taken


class ChildStream:
    """A long video opened in a decoding child: what ``VideoFile`` tells (grid, steps, size),
    with its parts decoded in that child, each next one while the caller uses the current one."""

    def __init__(self, pool: DecodePool, record: VideoRecord, row: dict, slot: int) -> None:
        self._pool, self._record, self._slot = pool, record, slot
        self.path, self.sampling, self.config = Path(record.path), pool.sampling, pool.config
        self.pts, self.duration = row["pts"], float(row["duration"])
        self.grid: np.ndarray = row["grid"]  # [n6] indices into the file's frames
        self.steps: np.ndarray = row["steps"]  # [T] grid indices
        self.trajectory_steps: np.ndarray = row["trajectory_steps"]  # [F] grid indices
        self.source_size = tuple(int(x) for x in row["source_size"])
        self._num_parts = int(row["part"][1])  # as the child's VideoFile splits it (whole batches, memory budget)
        self._ahead: tuple[int, Handle] | None = None

    @property
    def num_grid(self) -> int:
        return int(len(self.grid))

    @property
    def num_parts(self) -> int:
        return self._num_parts

    def parts(self) -> Iterator[DecodedVideo]:
        """The parts in order. Raises ``DecodeError`` for a part that fails (or crashes twice)."""
        self._ahead = (0, self._submit(0))
        for index in range(self.num_parts):
            _, handle = self._ahead
            self._ahead = (index + 1, self._submit(index + 1)) if index + 1 < self.num_parts else None
            row, _ = self._pool._row(handle, self._pool._decode_part, self._record, index)
            part = from_row(row, self.sampling)
            if isinstance(part, VideoResult):
                raise DecodeError(self.path, part.reason)
            yield part

    def _submit(self, index: int) -> Handle:
        return self._pool._send(self._slot, self._pool._decode_part, self._record, index)

    def close(self) -> None:
        """Take (and drop) a part decoded ahead that will not be used."""
        if self._ahead is not None:
            index, handle = self._ahead
            self._ahead = None
            self._pool._row(handle, self._pool._decode_part, self._record, index)


_CONTAINED: DecodePool | None = None  # this process's one decoding child for decode_contained


def decode_contained(record: VideoRecord, sampling: SamplingConfig, config: DecodeConfig,
                     decode: Callable[..., tuple[dict, float]] = decode_in_child) -> dict:
    """``record``'s ``extract.decoded`` row, decoded in a child of this process that is kept for
    the next call (a Ray decode task's decode): a decoder crash fails this video with
    ``CRASHED``, not the process that asked."""
    global _CONTAINED
    if _CONTAINED is None or (_CONTAINED.sampling, _CONTAINED.config, _CONTAINED._decode) != (sampling, config, decode):
        if _CONTAINED is not None:
            _CONTAINED.close()
        _CONTAINED = DecodePool(sampling, config, 1, decode=decode)
    return _CONTAINED.row(record)
