"""Decoding with decord (the ``decord2`` distribution): frames, timestamps, and the 6 fps grid.

A video is opened once (``open_video``: timestamps, grid, frame size) and its frames are then
decoded part by part: a part is a run of whole model batches of appearance steps (as many as
``DecodeConfig.part_mb`` allows) with the frames their clips and trajectory frames need, so a
long video never sits in memory whole.
Frames whose longer side exceeds ``DecodeConfig.max_side`` are downscaled by the decoder; the
models resize their inputs anyway (DESIGN.md section 1), and boxes are mapped back to the
file's own pixels (``DecodedVideo.scale``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.probe import DecodeError, check_file, leading_dropped
from extract.sampling import SamplingConfig, appearance_steps, grid_frame_indices, motion_windows, step_batches, trajectory_steps

# decord prefixes its messages with a time and a source location: "[23:13:17] /src/x.cc:285: "
_DECORD_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (\[[^\]]*\] )?")


@dataclass(frozen=True)
class DecodeConfig:
    """Bounds on what decoding holds in memory; none changes the sampling semantics or the features.

    A part is a run of whole model batches of ``batch_steps`` steps (``sampling.step_batches``
    of the whole video), so a video's features are the same bits however it is cut into parts.
    Its length follows the memory budget: ``part_mb`` MiB over the bytes one step holds (its
    ``stride`` decoded grid frames at the decoded size, plus ``step_kb`` of model outputs),
    rounded down to whole batches, at least one batch; ``part_steps`` > 0 caps it.
    """

    max_side: int = 1024  # frames with a longer side above this are downscaled at decode (aspect kept); 0 = never
    part_steps: int = 0  # most appearance steps per part (longer videos stream in parts); 0 = as part_mb allows
    part_mb: int = 256  # memory budget of one part's decoded frames and model outputs, MiB (1 .. 65536)
    # Frames (a GIF's logical canvas) of more pixels are refused before decoding: the decoder
    # holds a frame at full size before max_side applies (12000x12000: a 4 GB peak). 40 MP lets
    # 8K UHD (33 MP) through; 0 = no limit.
    max_pixels: int = 40_000_000
    batch_steps: int = 16  # steps per model batch: RunConfig sets it to runtime.batch_size
    step_kb: int = 800  # model outputs kept per step until its part is done (ResNet C5 and I3D maps),
    #                     KiB: RunConfig sets it from the model input sizes

    def __post_init__(self) -> None:
        if self.max_side < 0 or self.part_steps < 0 or self.max_pixels < 0 or self.step_kb < 0:
            raise ValueError(f"max_side, max_pixels, part_steps and step_kb must be >= 0, got {self.max_side}, "
                             f"{self.max_pixels}, {self.part_steps} and {self.step_kb}")
        if not 1 <= self.part_mb <= 65536 or self.batch_steps < 1:
            raise ValueError(f"part_mb must be in 1 .. 65536 and batch_steps >= 1, got {self.part_mb} and {self.batch_steps}")

    def steps_per_part(self, width: int, height: int, stride: int) -> int:
        """Target steps per part for decoded frames of ``width`` x ``height`` (see the class)."""
        per_step = stride * width * height * 3 + self.step_kb * 1024
        steps = max(1, self.part_mb * 2**20 // max(per_step, 1))
        return min(steps, self.part_steps) if self.part_steps else steps


@dataclass(frozen=True)
class DecodedVideo:
    """The decoded frames of one video, or of one part of it.

    frames (ndarray[U, h, w, 3] uint8, RGB): the distinct decoded frames this part uses.
    grid (ndarray[n6] int64): for each grid time of the whole video, an index into ``frames``,
        or -1 where this part does not need that grid frame.
    pts (ndarray[N] float64): timestamps of all frames of the file, seconds.
    duration: seconds; ``n6 = ceil(duration * fps)``.
    steps (ndarray[T] int64): grid indices of this part's appearance steps.
    trajectory_steps (ndarray[F] int64): grid indices of this part's trajectory frames.
    source_size: (W, H) of the file's frames; ``frames`` are smaller when downscaled at decode.
    part: (index, count) of this part among the video's parts; (0, 1) is the whole video.
    """

    path: str
    frames: np.ndarray
    grid: np.ndarray
    pts: np.ndarray
    duration: float
    sampling: SamplingConfig
    steps: np.ndarray
    trajectory_steps: np.ndarray
    source_size: tuple[int, int]
    part: tuple[int, int] = (0, 1)

    @property
    def height(self) -> int:
        """Height of the decoded frames (the boxes' frame before ``scale``)."""
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): decoded-frame pixels times these are the file's pixels."""
        return self.source_size[0] / self.width, self.source_size[1] / self.height

    @property
    def num_grid(self) -> int:
        return int(len(self.grid))

    @property
    def is_whole(self) -> bool:
        return self.part[1] == 1

    @property
    def windows(self) -> np.ndarray:
        """Grid indices of each step's I3D clip, ndarray[T, window]."""
        return motion_windows(self.steps, self.num_grid, self.sampling.window)

    def grid_frames(self, grid_indices: np.ndarray) -> np.ndarray:
        """Frames at the given grid indices: ndarray[*grid_indices.shape, h, w, 3] uint8."""
        rows = self.grid[np.asarray(grid_indices)]
        if (rows < 0).any():
            raise IndexError(f"grid indices {np.asarray(grid_indices)[rows < 0].tolist()} are not decoded in part {self.part}")
        return self.frames[rows]


class VideoFile:
    """An opened video: timestamps and grid are known, frames are decoded on demand.

    Use ``parts`` (or ``read`` for the whole video at once), then ``close``.
    """

    def __init__(self, path: Path, reader, pts: np.ndarray, duration: float, sampling: SamplingConfig,
                 source_size: tuple[int, int], config: DecodeConfig, first: np.ndarray | None = None) -> None:
        self.path, self.pts, self.duration, self.sampling = path, pts, duration, sampling
        self.source_size, self.config = source_size, config
        self._reader = reader
        # ``first``: frame 0, when the reader has already returned it.
        self._position = 0 if first is None else 1  # file index of the frame next() returns
        self._kept: dict[int, np.ndarray] = {} if first is None else {0: first}  # decoded frames needed again
        self.grid = grid_frame_indices(pts, duration, sampling.fps)  # [n6] indices into the file's frames
        self.steps = appearance_steps(len(self.grid), sampling.stride)
        self.trajectory_steps = trajectory_steps(len(self.grid), sampling.fps, sampling.trajectory_fps)
        self._parts = self._split(*decoded_size(*source_size, config.max_side))  # step ranges

    @property
    def num_grid(self) -> int:
        return int(len(self.grid))

    @property
    def num_parts(self) -> int:
        return len(self._parts)

    def parts(self) -> Iterator[DecodedVideo]:
        """The video's parts in order; each holds only the frames it needs."""
        for index in range(self.num_parts):
            yield self.part(index)

    def read(self) -> DecodedVideo:
        """The whole video as one part (memory grows with its length: prefer ``parts``)."""
        return self._decode(self.steps, self.trajectory_steps, (0, 1))

    def part(self, index: int) -> DecodedVideo:
        """Part ``index``: its steps (whole batches) and the trajectory frames in their grid span."""
        if not 0 <= index < self.num_parts:
            raise IndexError(f"part {index} of a video with {self.num_parts} parts")
        steps, traj = self._part_steps(index)
        keep_from = self.grid[self._needed(*self._part_steps(index + 1))].min() if index + 1 < self.num_parts else None
        return self._decode(steps, traj, (index, self.num_parts), keep_from)

    def _split(self, width: int, height: int) -> list[range]:
        """Step ranges of the parts: consecutive whole batches, as many as the budget allows (at least one)."""
        target = self.config.steps_per_part(width, height, self.sampling.stride)
        parts: list[range] = []
        for batch in step_batches(len(self.steps), self.config.batch_steps):
            if parts and len(parts[-1]) + len(batch) <= target:
                parts[-1] = range(parts[-1].start, batch.stop)
            else:
                parts.append(batch)
        return parts or [range(0, 0)]

    def _part_steps(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices of part ``index``'s appearance steps and trajectory frames."""
        span = self._parts[index]
        steps = self.steps[span.start : span.stop]
        end = self.steps[span.stop] if span.stop < len(self.steps) else self.num_grid
        traj = self.trajectory_steps[(self.trajectory_steps >= steps[0]) & (self.trajectory_steps < end)]
        return steps, traj

    def _needed(self, steps: np.ndarray, traj: np.ndarray) -> np.ndarray:
        """Grid indices that steps (with their clips) and trajectory frames use, sorted."""
        return np.unique(np.concatenate([steps, motion_windows(steps, self.num_grid, self.sampling.window).ravel(), traj]))

    def _decode(self, steps: np.ndarray, traj: np.ndarray, part: tuple[int, int], keep_from: int | None = None) -> DecodedVideo:
        needed = self._needed(steps, traj)
        ids, rows = np.unique(self.grid[needed], return_inverse=True)
        frames = self._read(ids)
        self._kept = {int(i): f for i, f in zip(ids, frames) if keep_from is not None and i >= keep_from}
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise DecodeError(self.path, f"frame size changes inside the video: {sorted(shapes)}")
        grid = np.full(self.num_grid, -1, np.int64)
        grid[needed] = rows
        return DecodedVideo(
            path=str(self.path), frames=np.stack(frames), grid=grid, pts=self.pts, duration=self.duration,
            sampling=self.sampling, steps=steps, trajectory_steps=traj, source_size=self.source_size, part=part,
        )

    def _read(self, ids: np.ndarray) -> list[np.ndarray]:
        """The frames at file indices ``ids`` (ascending), read in order with ``next()``.

        decord's random access (``reader[i]``, ``get_batch``) skips forward through a polling
        loop that gives up under CPU load and then returns a wrong frame without an error
        (decord2 3.4.0, seen on a loaded 2-core machine); decoding every frame in order never skips.
        """
        decord = _decord()

        out = []
        try:
            for i in ids.tolist():
                if i in self._kept:
                    out.append(self._kept[i])
                    continue
                if i < self._position:  # only when parts are read out of order
                    self._reader.seek(0)
                    self._position = 0
                while self._position < i:
                    self._reader.next()
                    self._position += 1
                out.append(_fix_row_padding(self._reader.next().asnumpy()))
                self._position += 1
        except (RuntimeError, StopIteration, decord.DECORDError) as e:
            raise DecodeError(self.path, f"cannot decode frame {self._position}: {_first_line(e)}") from None
        return out

    def close(self) -> None:
        self._reader = None


def _decord():
    """The decord module, imported after torch.

    decord2 3.4.0 dlopens every CUDA library of the ``nvidia-*`` packages with RTLD_GLOBAL when
    imported; done before torch is loaded, torch's CPU convolutions then segfault when two
    model threads run them (tests/test_video.py::test_decord_before_torch_does_not_crash_models).
    """
    import torch  # noqa: F401 - load order only

    import decord

    return decord


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
    check_file(path, DecodeConfig().max_pixels)
    return _timestamps(path, _open(path))


def _open(path: Path, size: tuple[int, int] | None = None):
    """A decord reader of ``path``; ``size`` (w, h) makes the decoder scale every frame."""
    decord = _decord()

    width, height = size or (-1, -1)
    try:
        reader = decord.VideoReader(str(path), num_threads=1, width=width, height=height)
    except (RuntimeError, decord.DECORDError) as e:
        message = str(e)
        if "cannot find video stream" in message:
            raise DecodeError(path, "no video stream in the file (audio only?)") from None
        if "broken metadata" in message:
            raise DecodeError(path, "no frame count or timestamps in the file (a raw stream without a container? "
                                    "remux it, e.g. ffmpeg -i IN -c copy OUT.mp4)") from None
        raise DecodeError(path, f"cannot open video: {_first_line(e)}") from None
    if len(reader) == 0:
        raise DecodeError(path, "no frames decoded")
    return reader


def _timestamps(path: Path, reader) -> tuple[np.ndarray, float]:
    decord = _decord()

    try:
        ts = np.asarray(reader.get_frame_timestamp(range(len(reader))), dtype=np.float64)
    except (RuntimeError, decord.DECORDError) as e:
        raise DecodeError(path, f"cannot read frame timestamps: {_first_line(e)}") from None
    if not np.isfinite(ts).all():
        raise DecodeError(path, "frame timestamps are not finite")
    pts = ts[:, 0]
    dropped = leading_dropped(path) if path.suffix.lower() != ".gif" else 0
    if 0 < dropped < len(pts):
        # Listed, never returned: the frames returned are those of the later timestamps.
        pts = pts[dropped:]
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
    return _DECORD_PREFIX.sub("", text[0]) if text else type(e).__name__


def decoded_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) that the decoder outputs for (width, height) frames: unchanged up to ``max_side``,
    else scaled so that the longer side is ``max_side`` (at least 1 px each)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def open_video(path: Path | str, sampling: SamplingConfig = SamplingConfig(),
               config: DecodeConfig = DecodeConfig()) -> VideoFile:
    """Open ``path``: check it, read its timestamps and frame size; frames come later.

    Raises:
        DecodeError with a reason fit for the manifest: missing, empty, not a video, truncated,
        no video stream, no frames, no timestamps.
    """
    decord = _decord()

    path = Path(path)
    check_file(path, config.max_pixels)
    reader = _open(path)
    pts, duration = _timestamps(path, reader)
    try:
        first = _fix_row_padding(reader.next().asnumpy())
    except (RuntimeError, StopIteration, decord.DECORDError) as e:
        raise DecodeError(path, f"cannot decode frame 0: {_first_line(e)}") from None
    height, width = first.shape[:2]
    size = decoded_size(width, height, config.max_side)
    if size != (width, height):
        return VideoFile(path, _open(path, size), pts, duration, sampling, (width, height), config)
    return VideoFile(path, reader, pts, duration, sampling, (width, height), config, first=first)


def decode(path: Path | str, sampling: SamplingConfig = SamplingConfig(),
           config: DecodeConfig = DecodeConfig()) -> DecodedVideo:
    """The whole video at once (see ``open_video``; its frames all in memory)."""
    video = open_video(path, sampling, config)
    try:
        return video.read()
    finally:
        video.close()
