"""One serialization of a decode outcome, used by both executors: the local executor's
decoding child returns it through a pipe, Ray carries it as a dataset row.

A row is a dict of plain values and numpy arrays: a whole decoded video (or one part of a long
one) with its frames; a video to stream in parts (``stream``: its timestamps and steps, no
frames; a decord reader cannot cross processes); or the reason a video failed (``reason``).

Between the local executor's processes, large frame arrays travel through a shared-memory file
(``send_frames`` in the child, ``receive_frames`` in the parent) rather than pickled through the
pipe: the parent maps the child's pages instead of reading and unpickling a copy.
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path

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
        return stream_row(key, path, decoded)
    if isinstance(decoded, VideoResult):
        return {
            "key": key, "path": path, "reason": decoded.reason, "stream": False, "frames": _NO_FRAMES, "grid": _EMPTY,
            "pts": np.zeros(0), "duration": 0.0, "steps": _EMPTY, "trajectory_steps": _EMPTY,
            "source_size": np.zeros(2, np.int64), "part": np.array([0, 1], np.int64),
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
        "part": np.array(decoded.part, np.int64),  # (index, count); (0, 1) is the whole video
    }


def stream_row(key: str, path: str, video: VideoFile) -> dict:
    """The row of a video to stream in parts: what its parts share, no frames (``video`` stays open)."""
    return {
        "key": key, "path": path, "reason": "", "stream": True, "frames": _NO_FRAMES,
        "grid": video.grid,  # [n6] int64, indices into the file's frames
        "pts": video.pts, "duration": video.duration, "steps": video.steps, "trajectory_steps": video.trajectory_steps,
        "source_size": np.array(video.source_size, np.int64), "part": np.array([0, video.num_parts], np.int64),
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
        source_size=tuple(int(x) for x in row["source_size"]), part=tuple(int(x) for x in row["part"]),
    )


# Shared-memory transfer of the frames. Files are named for the process that reads them, so that
# one whose reader died unread (a SIGKILL between the two sides) can be found and removed.
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "vqa-extract-frames-"
# Smaller frame arrays are pickled: a few small frames cost the pipe little, and need no file.
# A real TGIF GIF's frames are ~5 MB: there shared memory took the parent's CPU per video from
# ~5.1 to ~0.9 ms and the child's from ~41 to ~38 ms (`extract bench --decode-only --transfer both`).
SHM_MIN_BYTES = 256 * 1024


def send_frames(row: dict, reader: int | None) -> dict:
    """In a decoding child: ``row`` with its frames moved into a shared-memory file for the
    process ``reader`` (a pid), where that pays; else ``row`` unchanged (pickled whole)."""
    frames = row["frames"]
    if reader is None or frames.nbytes < SHM_MIN_BYTES or not SHM_DIR.is_dir():
        return row
    path = SHM_DIR / f"{SHM_PREFIX}{reader}-{uuid.uuid4().hex}"
    with open(path, "xb") as f:
        f.write(memoryview(np.ascontiguousarray(frames)).cast("B"))
    return row | {"frames": _NO_FRAMES, "shm": str(path), "frames_shape": frames.shape}


def receive_frames(row: dict) -> dict:
    """In the reading process: ``row`` with the frames that ``send_frames`` put in shared memory
    mapped back (copy-on-write: no copy is made unless a frame is written); the file is removed."""
    if "shm" not in row:
        return row
    row = dict(row)
    path, shape = row.pop("shm"), row.pop("frames_shape")
    try:
        with open(path, "rb") as f:
            pages = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    finally:
        os.unlink(path)  # the mapping keeps the pages until the array is freed
    row["frames"] = np.frombuffer(pages, np.uint8).reshape(shape)
    return row


def remove_frames(reader: int | None = None) -> int:
    """Remove shared-memory frame files left unread: those for ``reader``, or (None) those whose
    reader no longer runs. Returns how many were removed."""
    removed = 0
    for path in SHM_DIR.glob(f"{SHM_PREFIX}*") if SHM_DIR.is_dir() else ():
        pid = int(path.name[len(SHM_PREFIX):].split("-")[0])
        if pid == reader or (reader is None and not _running(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
