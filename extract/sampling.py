"""The 6 fps grid (DESIGN.md section 1): which decoded frame feeds which feature step.

Everything here is a pure function of frame timestamps, so the same rule can be applied
to decord's output in the pipeline and to PyAV's output in the tests.

Rule: grid times ``t_k = k / fps`` for ``k = 0, 1, ...`` while ``t_k < D``; grid frame ``k``
is the last decoded frame whose ``pts <= t_k`` (sample and hold), or the first frame if none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# decord reports timestamps as float32, so pts and grid times are compared at that precision:
# a frame exactly on a grid time (5/30 s against 1/6 s) counts as due. Two instants closer than
# float32 resolution (under 3e-5 s in the first 4 minutes) compare as equal.
TIME_DTYPE = np.float32


@dataclass(frozen=True)
class SamplingConfig:
    """How frames are sampled; every default is the MASN paper's (section 4.2)."""

    fps: float = 6.0  # grid rate: frames per second kept from the video
    stride: int = 4  # one appearance step every `stride` grid frames
    window: int = 8  # grid frames per I3D clip, centred as g-4 .. g+3
    trajectory_fps: float = 1.0  # rate of the trajectory frames (must divide `fps`)

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.trajectory_fps <= 0:
            raise ValueError(f"fps and trajectory_fps must be positive, got {self.fps} and {self.trajectory_fps}")
        if self.stride < 1 or self.window < 1:
            raise ValueError(f"stride and window must be >= 1, got {self.stride} and {self.window}")
        ratio = self.fps / self.trajectory_fps
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"trajectory_fps must divide fps, got fps={self.fps}, trajectory_fps={self.trajectory_fps}")


def grid_size(duration: float, fps: float) -> int:
    """Number of grid times ``k / fps`` strictly below ``duration``: ``ceil(duration * fps)``.

    The product is rounded to 1e-9 first so that e.g. 2.0 s at 6 fps gives 12, not 13.
    """
    if duration <= 0:
        return 0
    return max(1, math.ceil(round(duration * fps, 9)))


def grid_frame_indices(pts: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Decoded-frame index for every grid time.

    Args:
        pts (ndarray[N]): presentation time in seconds of each decoded frame, in decode order.
        duration: ``pts[-1]`` plus the last frame's display duration, in seconds.
        fps: grid rate.

    Returns:
        ndarray[n6] of int64 in ``[0, N)``: index of the last frame with ``pts <= t_k``
        (compared as ``TIME_DTYPE``), or 0 if no frame is that early.
    """
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 1 or len(pts) == 0:
        raise ValueError(f"pts must be a non-empty 1-d array, got shape {pts.shape}")
    n = grid_size(duration, fps)
    times = (np.arange(n, dtype=np.float64) / fps).astype(TIME_DTYPE)
    # With unsorted pts, the running maximum means a frame is used only once every frame
    # decoded before it is due; for sorted pts it changes nothing.
    due = np.maximum.accumulate(pts.astype(TIME_DTYPE))
    idx = np.searchsorted(due, times, side="right") - 1
    return np.clip(idx, 0, len(pts) - 1).astype(np.int64)


def appearance_steps(n_grid: int, stride: int) -> np.ndarray:
    """Grid indices of the appearance steps ``0, stride, 2*stride, ...``: ndarray[T], T = ceil(n_grid / stride)."""
    return np.arange(0, n_grid, stride, dtype=np.int64)


def step_batches(n: int, size: int) -> list[range]:
    """The model batches of ``n`` items (a video's steps), by a rule of ``n`` and ``size`` alone.

    Full batches of ``size``, then the rest in decreasing powers of two (13 = 8 + 4 + 1): no
    batch is padded, and the small tail batches keep several model workers busy to the end.
    Kernels round by batch size, so a rule that depends on the video alone makes its features
    independent of the videos that share its calls. ``step_batches(23, 8)`` is
    ``[0:8, 8:16, 16:20, 20:22, 22:23]``.
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    out = [range(s, s + size) for s in range(0, n - n % size, size)]
    start = n - n % size
    for bit in reversed(range((n % size).bit_length())):
        if (n % size) >> bit & 1:
            out.append(range(start, start + (1 << bit)))
            start += 1 << bit
    return out


def motion_windows(steps: np.ndarray, n_grid: int, window: int) -> np.ndarray:
    """Grid indices of the I3D clip of each step: ``g - window//2 .. g + window//2 - 1``, clamped.

    Returns:
        ndarray[T, window] of int64 in ``[0, n_grid)``.
    """
    if n_grid <= 0:
        return np.zeros((0, window), dtype=np.int64)
    offsets = np.arange(window, dtype=np.int64) - window // 2
    return np.clip(np.asarray(steps, dtype=np.int64)[:, None] + offsets[None, :], 0, n_grid - 1)


def trajectory_steps(n_grid: int, fps: float, trajectory_fps: float) -> np.ndarray:
    """Grid indices of the trajectory frames (every ``fps / trajectory_fps``-th grid frame)."""
    every = int(round(fps / trajectory_fps))
    return np.arange(0, n_grid, every, dtype=np.int64)


def slot_steps(num_steps: int, slots: int = 16) -> np.ndarray:
    """Which appearance step fills each of NExT-QA's ``slots`` fixed clip slots.

    With T >= slots, slot ``i`` takes step ``floor((i + 0.5) * T / slots)``: the step at the
    centre of the i-th of ``slots`` equal spans of the video. With T < slots, slot ``i`` takes
    step ``floor(i * T / slots)``: every step in order, each repeated ``slots / T`` times
    (rounded down or up), none skipped.

    Returns:
        ndarray[slots] of int64 in ``[0, T)``, non-decreasing.
    """
    if num_steps < 1 or slots < 1:
        raise ValueError(f"num_steps and slots must be >= 1, got {num_steps} and {slots}")
    i = np.arange(slots, dtype=np.int64)
    if num_steps >= slots:
        return (2 * i + 1) * num_steps // (2 * slots)
    return i * num_steps // slots
