"""Decoding with decord (the ``decord2`` distribution): frames, timestamps, and the 6 fps grid.

A video is decoded once; the frames of its grid feed every stage. Frames stay at the
decoded resolution here: each model resizes its own input (DESIGN.md section 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.sampling import SamplingConfig, appearance_steps, grid_frame_indices, motion_windows, trajectory_steps

GIF_TRAILER = b"\x3b"


class DecodeError(RuntimeError):
    """A video that cannot be used; ``reason`` goes into the manifest."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class DecodedVideo:
    """The grid of one video.

    frames (ndarray[U, H, W, 3] uint8, RGB): the distinct decoded frames the grid uses.
    grid (ndarray[n6] int64): for each grid time, an index into ``frames``.
    pts (ndarray[N] float64): timestamps of all decoded frames, seconds.
    duration: seconds; ``n6 = ceil(duration * fps)``.
    """

    path: str
    frames: np.ndarray
    grid: np.ndarray
    pts: np.ndarray
    duration: float
    sampling: SamplingConfig

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def num_grid(self) -> int:
        return int(len(self.grid))

    @property
    def steps(self) -> np.ndarray:
        """Grid indices of the appearance steps, ndarray[T]."""
        return appearance_steps(self.num_grid, self.sampling.stride)

    @property
    def windows(self) -> np.ndarray:
        """Grid indices of each step's I3D clip, ndarray[T, window]."""
        return motion_windows(self.steps, self.num_grid, self.sampling.window)

    @property
    def trajectory_steps(self) -> np.ndarray:
        """Grid indices of the trajectory frames, ndarray[F]."""
        return trajectory_steps(self.num_grid, self.sampling.fps, self.sampling.trajectory_fps)

    def grid_frames(self, grid_indices: np.ndarray) -> np.ndarray:
        """Frames at the given grid indices: ndarray[*grid_indices.shape, H, W, 3] uint8."""
        return self.frames[self.grid[np.asarray(grid_indices)]]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DecodeError(path, "file not found")
    if not path.is_file():
        raise DecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    if path.suffix.lower() == ".gif":
        _check_gif(path)


def _check_gif(path: Path) -> None:
    # decord decodes a truncated GIF up to the break without an error: a missing trailer byte
    # is the cheap signal, and Pillow then decides whether the frame data really is cut short.
    with open(path, "rb") as f:
        head = f.read(6)
        f.seek(-1, os.SEEK_END)
        tail = f.read(1)
    if head not in (b"GIF87a", b"GIF89a"):
        raise DecodeError(path, f"not a GIF file (header {head!r})")
    if tail == GIF_TRAILER:
        return
    from PIL import Image

    try:
        with Image.open(path) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                im.load()
    except (OSError, EOFError, SyntaxError) as e:
        raise DecodeError(path, f"truncated GIF: {e}") from None


def _fix_row_padding(frame: np.ndarray) -> np.ndarray:
    # decord2 returns narrow GIF frames (width < ~64 px) with the decoder's padded row stride
    # folded into the channel axis; the first 3 * W bytes of every row are the RGB pixels.
    h, w, c = frame.shape
    if c == 3:
        return frame
    return np.ascontiguousarray(frame.reshape(h, w * c)[:, : w * 3]).reshape(h, w, 3)


def read_timestamps(path: Path | str) -> tuple[np.ndarray, float]:
    """Presentation times of every frame and the video's duration.

    Returns:
        (pts (ndarray[N] float64, seconds), duration) where duration is the last frame's pts
        plus its display duration (GIF frame delays included).
    Raises:
        DecodeError for missing, empty, unreadable or frameless files.
    """
    path = Path(path)
    _check_file(path)
    reader = _open(path)
    return _timestamps(path, reader)


def _open(path: Path):
    import decord

    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except (RuntimeError, decord.DECORDError) as e:
        if "cannot find video stream" in str(e):
            raise DecodeError(path, "no video stream in the file (audio only?)") from None
        raise DecodeError(path, f"cannot open video: {_first_line(e)}") from None
    if len(reader) == 0:
        raise DecodeError(path, "no frames decoded")
    return reader


def _timestamps(path: Path, reader) -> tuple[np.ndarray, float]:
    import decord

    try:
        ts = np.asarray(reader.get_frame_timestamp(range(len(reader))), dtype=np.float64)
    except (RuntimeError, decord.DECORDError) as e:
        raise DecodeError(path, f"cannot read frame timestamps: {_first_line(e)}") from None
    if not np.isfinite(ts).all():
        raise DecodeError(path, "frame timestamps are not finite")
    pts = ts[:, 0]
    last_start, last_end = ts[-1]
    if last_end > last_start:
        duration = float(last_end)
    else:
        # Containers that do not store the last frame's duration: assume the typical interval.
        intervals = np.diff(pts)
        intervals = intervals[intervals > 0]
        fallback = float(np.median(intervals)) if len(intervals) else 1.0 / max(reader.get_avg_fps(), 1e-6)
        duration = float(last_start) + fallback
    return pts, duration


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def decode(path: Path | str, sampling: SamplingConfig = SamplingConfig()) -> DecodedVideo:
    """Decode the frames of ``path`` that its grid uses.

    Raises:
        DecodeError with a reason fit for the manifest: missing, empty, not a video, truncated,
        no video stream, no frames.
    """
    import decord

    path = Path(path)
    _check_file(path)
    reader = _open(path)
    pts, duration = _timestamps(path, reader)
    grid_to_frame = grid_frame_indices(pts, duration, sampling.fps)
    needed, grid = np.unique(grid_to_frame, return_inverse=True)
    try:
        frames = [_fix_row_padding(reader[int(i)].asnumpy()) for i in needed]
    except (RuntimeError, decord.DECORDError) as e:
        raise DecodeError(path, f"cannot decode frame: {_first_line(e)}") from None
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise DecodeError(path, f"frame size changes inside the video: {sorted(shapes)}")
    return DecodedVideo(
        path=str(path),
        frames=np.stack(frames),
        grid=grid.astype(np.int64),
        pts=pts,
        duration=duration,
        sampling=sampling,
    )
