"""One serialization of a decode outcome, used by both executors: the local executor's
decoding child returns it through a pipe, Ray carries it as a dataset row.

A row is a dict of plain values and numpy arrays: a whole decoded video with its frames; a
video to stream in parts (``stream``, no frames: a decord reader cannot cross processes, the
model side opens the file again); or the reason a video failed (``reason``).
"""

from __future__ import annotations

import numpy as np

from extract.sampling import SamplingConfig
from extract.store import VideoResult
from extract.video import DecodedVideo, VideoFile

# The row of a video without frames: empty arrays keep every row's columns alike (Arrow).
_NO_FRAMES = np.zeros((0, 0, 0, 3), np.uint8)
_EMPTY = np.zeros(0, np.int64)


def to_row(key: str, path: str, decoded: DecodedVideo | VideoFile | VideoResult) -> dict:
    """The row of a decode outcome (a ``VideoFile`` is closed: the row only says to stream it)."""
    if isinstance(decoded, VideoFile):
        decoded.close()
    if not isinstance(decoded, DecodedVideo):
        return {
            "key": key, "path": path, "reason": decoded.reason if isinstance(decoded, VideoResult) else "",
            "stream": isinstance(decoded, VideoFile), "frames": _NO_FRAMES, "grid": _EMPTY, "pts": np.zeros(0),
            "duration": 0.0, "steps": _EMPTY, "trajectory_steps": _EMPTY, "source_size": np.zeros(2, np.int64),
        }
    return {
        "key": key, "path": path, "reason": "", "stream": False,
        "frames": decoded.frames,  # [U, h, w, 3] uint8
        "grid": decoded.grid,  # [n6] int64, indices into frames
        "pts": decoded.pts,  # [N] float64
        "duration": decoded.duration,
        "steps": decoded.steps,  # [T] int64 grid indices
        "trajectory_steps": decoded.trajectory_steps,  # [F] int64 grid indices
        "source_size": np.array(decoded.source_size, np.int64),  # (W, H)
    }


def from_row(row: dict, sampling: SamplingConfig) -> DecodedVideo | VideoResult | None:
    """The inverse of ``to_row``: the decoded video, the failed result, or None for a video to
    stream (the caller opens it)."""
    if row["reason"]:
        return VideoResult(str(row["key"]), str(row["path"]), reason=str(row["reason"]))
    if row["stream"]:
        return None
    return DecodedVideo(
        path=str(row["path"]), frames=row["frames"], grid=row["grid"], pts=row["pts"], duration=float(row["duration"]),
        sampling=sampling, steps=row["steps"], trajectory_steps=row["trajectory_steps"],
        source_size=tuple(int(x) for x in row["source_size"]),
    )
