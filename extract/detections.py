"""External detections (``--detections PATH``): read, validate, and match them to our frame times.

Researchers often have boxes from a detector this package cannot run (the Visual Genome
bottom-up-attention Faster R-CNN of MASN, the OpenImages detector of the NExT-QA trajectory
paper). This module turns such boxes into per-time detections that the objects, motion-objects
and trajectories stages can use in place of the detector's. Two layouts are read:

- a directory with one ``<key>.json`` per video key, the format ``extract link`` reads::

      {"label_names": ["person", ...],            # optional: the vocabulary labels index
       "frames": [{"time": 0.0,                    # seconds, strictly increasing
                   "boxes": [[x1, y1, x2, y2], ...],  # the video file's pixels
                   "scores": [0.9, ...],           # one per box, finite, >= 0
                   "labels": [3, ...]}]}           # one per box: ints, or class names

- one HDF5 file (``.h5`` / ``.hdf5``) with a group per video key holding ``times`` (F,) float,
  ``num_boxes`` (F,) int, ``boxes`` (F, K, 4) float, ``scores`` (F, K) float, ``labels`` (F, K)
  int and optionally ``label_names`` (L,) strings; rows ``>= num_boxes[f]`` of frame ``f`` are
  padding and ignored.

Labels become indices into a per-video vocabulary ``label_names``: the file's own, else the
``class_names`` given to :class:`DetectionSource`, else (names in the labels) the sorted names
used; ints without any vocabulary stay raw class ids (``label_names`` empty).

Matching (:func:`nearest_frames`): each requested time takes the detection frame nearest to it
if that is within ``tolerance`` seconds (default half a grid step, :func:`default_tolerance`;
ties go to the earlier frame); otherwise it gets zero boxes. Boxes are never invented or moved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from extract.atomic import atomic_path, atomic_write
from extract.store import sha256_file

__all__ = [
    "BOX_SLACK_PX", "DetectionError", "DetectionSource", "FrameDetections", "VideoDetections",
    "default_tolerance", "nearest_frames", "parse_json_detections", "read_json_detections",
    "write_detections_hdf5", "write_detections_json",
]

BOX_SLACK_PX = 1.0  # a box may stick out of the frame by this much (rounding in other tools' resizes)
HDF5_SUFFIXES = (".h5", ".hdf5")
Missing = Literal["fail", "empty"]


class DetectionError(ValueError):
    """A video's detections are unusable; the message names the file and the reason."""


@dataclass(frozen=True)
class FrameDetections:
    """Detections at one requested time, best first.

    boxes (ndarray[K, 4] float32): x1, y1, x2, y2 in the video file's pixels.
    scores (ndarray[K] float32), labels (ndarray[K] int64): indices into the video's ``label_names``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class VideoDetections:
    """One video's detections as given, frame by frame, each frame sorted best first.

    times (ndarray[F] float64): strictly increasing seconds; F = 0 for a video without detections.
    frames (tuple[FrameDetections, ...]): F entries, one per time.
    label_names (tuple[str, ...]): the vocabulary labels index; empty when labels are raw ids.
    source (str): where they came from (file, or ``file:/key`` for HDF5), for messages.
    """

    times: np.ndarray
    frames: tuple[FrameDetections, ...]
    label_names: tuple[str, ...]
    source: str

    def at(self, times: Sequence[float] | np.ndarray, tolerance: float) -> list[FrameDetections]:
        """The detections at each of ``times`` (see :func:`nearest_frames`); zero boxes where none is near."""
        index = nearest_frames(self.times, np.asarray(times, dtype=np.float64), tolerance)
        return [self.frames[i] if i >= 0 else _empty_frame() for i in index]

    def check_frame(self, width: int, height: int, slack: float = BOX_SLACK_PX) -> None:
        """Raise DetectionError when a box leaves the ``width`` x ``height`` frame by more than ``slack`` px."""
        for f, frame in enumerate(self.frames):
            b = frame.boxes
            bad = (b[:, 0] < -slack) | (b[:, 1] < -slack) | (b[:, 2] > width + slack) | (b[:, 3] > height + slack)
            if bad.any():
                n = int(np.flatnonzero(bad)[0])
                raise DetectionError(f"{self.source}: frame {f} (time {self.times[f]:g}): box {n} "
                                     f"{b[n].tolist()} is outside the {width}x{height} frame by more than {slack:g} px")


def default_tolerance(fps: float) -> float:
    """Half a grid step: the largest tolerance at which no detection frame serves two grid times."""
    return 0.5 / fps


def nearest_frames(frame_times: np.ndarray, times: np.ndarray, tolerance: float) -> np.ndarray:
    """For each requested time, the index of the nearest detection frame within ``tolerance``.

    Args:
        frame_times (ndarray[F]): strictly increasing detection times, seconds.
        times (ndarray[T]): requested times, seconds, any order.
        tolerance: largest accepted ``|frame_time - time|`` (inclusive, up to 1e-9 s of rounding).

    Returns:
        ndarray[T] int64: a frame index, or -1 where no frame is within ``tolerance``.
        Equidistant frames: the earlier one.
    """
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"tolerance: expected a finite number >= 0 seconds, got {tolerance!r}")
    frame_times = np.asarray(frame_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(frame_times) == 0:
        return np.full(len(times), -1, dtype=np.int64)
    after = np.clip(np.searchsorted(frame_times, times, side="left"), 0, len(frame_times) - 1)
    before = np.clip(after - 1, 0, len(frame_times) - 1)
    later = np.abs(frame_times[after] - times) < np.abs(frame_times[before] - times)
    best = np.where(later, after, before)
    near = np.abs(frame_times[best] - times) <= tolerance + 1e-9
    return np.where(near, best, -1).astype(np.int64)


class DetectionSource:
    """A ``--detections PATH``: a directory of ``<key>.json`` files or one HDF5 file.

    Args:
        path: the directory or the ``.h5`` / ``.hdf5`` file.
        missing: ``fail`` (a video without detections fails with a reason) or ``empty``
            (it gets zero boxes at every time).
        class_names: vocabulary for files whose int labels come without ``label_names``
            (e.g. the 1600 Visual Genome classes); names in labels are looked up in it.

    Picklable (it holds only the path and settings), so executors can ship it to workers.
    """

    def __init__(self, path: Path, *, missing: Missing = "fail", class_names: Sequence[str] | None = None) -> None:
        if missing not in ("fail", "empty"):
            raise ValueError(f"missing: expected 'fail' or 'empty', got {missing!r}")
        self.path = Path(path)
        self.missing = missing
        self.class_names = tuple(class_names) if class_names is not None else None
        if self.path.is_dir():
            self.kind = "json"
        elif self.path.is_file() and self.path.suffix.lower() in HDF5_SUFFIXES:
            self.kind = "hdf5"
        else:
            raise FileNotFoundError(f"--detections {self.path}: expected a directory of <key>.json files "
                                    f"or an HDF5 file ({', '.join(HDF5_SUFFIXES)})")

    def load(self, key: str, *, frame_size: tuple[int, int] | None = None) -> VideoDetections:
        """The detections of video ``key``; with ``frame_size = (width, height)`` boxes are bounds-checked.

        Raises DetectionError naming the file and the reason (for a missing key only when
        ``missing`` is ``fail``).
        """
        if self.kind == "json":
            dets = self._load_json(key)
        else:
            dets = self._load_hdf5(key)
        if dets is None:
            if self.missing == "fail":
                where = self.path / f"{key}.json" if self.kind == "json" else f"{self.path}:/{key}"
                raise DetectionError(f"{where}: no detections for video {key!r} (detections_missing: fail)")
            dets = VideoDetections(np.zeros(0), (), self.class_names or (), f"{self.path} (none for {key})")
        if frame_size is not None:
            dets.check_frame(*frame_size)
        return dets

    def digests(self, keys: Sequence[str]) -> dict[str, str]:
        """sha256 of each file used for ``keys``, by name relative to ``path`` (HDF5: the one file)."""
        if self.kind == "hdf5":
            return {self.path.name: sha256_file(self.path)}
        files = (self.path / f"{key}.json" for key in keys)
        return {f.name: sha256_file(f) for f in sorted(files) if f.is_file()}

    def describe(self, keys: Sequence[str]) -> dict:
        """What run.json records: source path, format, missing policy and the per-file digests."""
        return {"path": str(self.path.absolute()), "format": self.kind, "missing": self.missing,
                "sha256": self.digests(keys)}

    def _load_json(self, key: str) -> VideoDetections | None:
        path = self.path / f"{key}.json"
        return read_json_detections(path, class_names=self.class_names) if path.is_file() else None

    def _load_hdf5(self, key: str) -> VideoDetections | None:
        import h5py

        source = f"{self.path}:/{key}"
        try:
            with h5py.File(self.path, "r") as f:
                if key not in f:
                    return None
                group = f[key]
                if not isinstance(group, h5py.Group):
                    raise DetectionError(f"{source}: expected a group, found a dataset")
                missing = [name for name in ("times", "num_boxes", "boxes", "scores", "labels") if name not in group]
                if missing:
                    raise DetectionError(f"{source}: missing dataset(s) {', '.join(missing)}")
                arrays = {name: group[name][()] for name in ("times", "num_boxes", "boxes", "scores", "labels")}
                names = [_text(n) for n in group["label_names"][()]] if "label_names" in group else None
        except OSError as e:
            raise DetectionError(f"{self.path}: unreadable HDF5 ({e})") from e
        return _parse_hdf5_group(arrays, names, source, self.class_names)


def read_json_detections(path: Path, *, class_names: Sequence[str] | None = None,
                         best_first: bool = True) -> VideoDetections:
    """One video's detections from a JSON file (``parse_json_detections``); DetectionError naming ``path``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DetectionError(f"{path}: malformed JSON ({e})") from e
    return parse_json_detections(obj, source=str(path), class_names=class_names, best_first=best_first)


def parse_json_detections(obj: object, *, source: str, class_names: Sequence[str] | None = None,
                          best_first: bool = True) -> VideoDetections:
    """Validate one video's JSON detections (already parsed) into :class:`VideoDetections`.

    best_first: sort each frame's boxes by score (the stages take the top ones); False keeps the
        file's order, so that box ``n`` of a frame is the file's box ``n`` (``extract link``).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("frames"), list):
        raise DetectionError(f"{source}: expected an object with a 'frames' list, got {type(obj).__name__}")
    names = obj.get("label_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DetectionError(f"{source}: 'label_names' must be a list of strings")
    times, boxes, scores, labels = [], [], [], []
    for f, frame in enumerate(obj["frames"]):
        if not isinstance(frame, dict):
            raise DetectionError(f"{source}: frame {f}: expected an object, got {type(frame).__name__}")
        missing = [k for k in ("time", "boxes", "scores", "labels") if k not in frame]
        if missing:
            raise DetectionError(f"{source}: frame {f}: missing {', '.join(repr(m) for m in missing)}")
        for k in ("boxes", "scores", "labels"):
            if not isinstance(frame[k], list):
                raise DetectionError(f"{source}: frame {f}: expected '{k}' a list, got {type(frame[k]).__name__}")
        if not _is_number(frame["time"]):
            raise DetectionError(f"{source}: frame {f}: expected 'time' a number, got {frame['time']!r}")
        for n, box in enumerate(frame["boxes"]):
            if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
                raise DetectionError(f"{source}: frame {f}: box {n}: expected [x1, y1, x2, y2] numbers, got {box!r}")
        for n, s in enumerate(frame["scores"]):
            if not _is_number(s):
                raise DetectionError(f"{source}: frame {f}: score {n}: expected a number, got {s!r}")
        for n, c in enumerate(frame["labels"]):
            if not (isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool))):
                raise DetectionError(f"{source}: frame {f}: label {n}: expected an int or a class name, got {c!r}")
        times.append(float(frame["time"]))
        boxes.append(np.array(frame["boxes"], dtype=np.float64).reshape(-1, 4))
        scores.append(np.array(frame["scores"], dtype=np.float64))
        labels.append(list(frame["labels"]))
    return _build(times, boxes, scores, labels, names, source, class_names, best_first)


def _parse_hdf5_group(arrays: dict[str, np.ndarray], names: list[str] | None, source: str,
                      class_names: Sequence[str] | None) -> VideoDetections:
    times, counts = arrays["times"], arrays["num_boxes"]
    boxes, scores, labels = arrays["boxes"], arrays["scores"], arrays["labels"]
    if times.ndim != 1 or counts.shape != times.shape:
        raise DetectionError(f"{source}: expected times (F,) and num_boxes (F,), got {times.shape} and {counts.shape}")
    f_count = len(times)
    if boxes.ndim != 3 or boxes.shape[0] != f_count or boxes.shape[2] != 4:
        raise DetectionError(f"{source}: expected boxes ({f_count}, K, 4), got {boxes.shape}")
    k_max = boxes.shape[1]
    for name, array in (("scores", scores), ("labels", labels)):
        if array.shape != (f_count, k_max):
            raise DetectionError(f"{source}: expected {name} ({f_count}, {k_max}) like boxes, got {array.shape}")
    if counts.dtype.kind not in "iu" or labels.dtype.kind not in "iu":
        raise DetectionError(f"{source}: num_boxes and labels must be integers, got {counts.dtype} and {labels.dtype}")
    if ((counts < 0) | (counts > k_max)).any():
        f = int(np.flatnonzero((counts < 0) | (counts > k_max))[0])
        raise DetectionError(f"{source}: frame {f}: num_boxes {int(counts[f])} is not in 0..{k_max} (the boxes' K)")
    cut = [int(k) for k in counts]
    return _build(times.astype(np.float64).tolist(), [boxes[f, :k].astype(np.float64) for f, k in enumerate(cut)],
                  [scores[f, :k].astype(np.float64) for f, k in enumerate(cut)],
                  [labels[f, :k].tolist() for f, k in enumerate(cut)], names, source, class_names)


def _build(times: list[float], boxes: list[np.ndarray], scores: list[np.ndarray], labels: list[list],
           names: list[str] | None, source: str, class_names: Sequence[str] | None,
           best_first: bool = True) -> VideoDetections:
    """Checks common to both layouts, then labels -> vocabulary indices and best-first order."""
    for f, t in enumerate(times):
        if not math.isfinite(t) or t < 0:
            raise DetectionError(f"{source}: frame {f}: expected 'time' a finite number >= 0, got {t!r}")
        if f and t <= times[f - 1]:
            raise DetectionError(f"{source}: frame {f}: expected 'time' > {times[f - 1]:g} (the previous frame's), got {t:g}")
        k = len(boxes[f])
        if len(scores[f]) != k or len(labels[f]) != k:
            raise DetectionError(f"{source}: frame {f}: length mismatch: {k} boxes, {len(scores[f])} scores, "
                                 f"{len(labels[f])} labels (expected one score and one label per box)")
        b = boxes[f]
        if not np.isfinite(b).all() or not np.isfinite(scores[f]).all():
            raise DetectionError(f"{source}: frame {f}: NaN or infinite box coordinate or score")
        if ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any():
            n = int(np.flatnonzero((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))[0])
            raise DetectionError(f"{source}: frame {f}: box {n} {b[n].tolist()} has a negative size "
                                 "(expected x1 <= x2 and y1 <= y2)")
        if (scores[f] < 0).any():
            raise DetectionError(f"{source}: frame {f}: negative score {float(scores[f].min()):g} (expected >= 0)")
    vocabulary, indices = _label_indices(labels, names, class_names, source)
    frames = []
    for b, s, lab in zip(boxes, scores, indices):
        # Best first, as the detector's are; ties keep file order.
        order = np.argsort(-s, kind="stable") if best_first else np.arange(len(s))
        frames.append(FrameDetections(b[order].astype(np.float32).reshape(-1, 4), s[order].astype(np.float32),
                                      lab[order]))
    return VideoDetections(np.array(times, dtype=np.float64), tuple(frames), vocabulary, source)


def _label_indices(labels: list[list], names: list[str] | None, class_names: Sequence[str] | None,
                   source: str) -> tuple[tuple[str, ...], list[np.ndarray]]:
    given = names if names is not None else class_names
    flat = [c for frame in labels for c in frame]
    as_names = [isinstance(c, str) for c in flat]
    if any(as_names) and not all(as_names):
        raise DetectionError(f"{source}: labels mix ints and class names; use one kind per video")
    if flat and all(as_names):
        if given is not None and len(set(given)) != len(given):  # ints may index duplicates (COCO's "N/A")
            raise DetectionError(f"{source}: label_names has duplicates, so a name does not pick one label")
        vocabulary = tuple(given) if given is not None else tuple(sorted(set(flat)))
        position = {name: i for i, name in enumerate(vocabulary)}
        unknown = sorted(set(flat) - set(position))
        if unknown:
            raise DetectionError(f"{source}: label(s) {', '.join(map(repr, unknown[:5]))} not in label_names")
        return vocabulary, [np.array([position[c] for c in frame], dtype=np.int64) for frame in labels]
    vocabulary = tuple(given) if given is not None else ()
    for f, frame in enumerate(labels):
        for n, c in enumerate(frame):
            if c < 0 or (vocabulary and c >= len(vocabulary)):
                limit = f" < {len(vocabulary)} (the label_names)" if vocabulary else ""
                raise DetectionError(f"{source}: frame {f}: label {n} is {c}; expected 0 <= label{limit}")
    return vocabulary, [np.array(frame, dtype=np.int64) for frame in labels]


def write_detections_json(path: Path, times: Sequence[float], frames: Sequence[FrameDetections],
                          label_names: Sequence[str] | None = None) -> Path:
    """Write one video's detections in the ``--detections`` JSON format, atomically (tmp, then rename)."""
    if len(times) != len(frames):
        raise ValueError(f"times and frames: expected one time per frame, got {len(times)} and {len(frames)}")
    obj: dict = {}
    if label_names:
        obj["label_names"] = list(label_names)
    obj["frames"] = [{"time": float(t), "boxes": np.asarray(d.boxes, dtype=np.float64).tolist(),
                      "scores": np.asarray(d.scores, dtype=np.float64).tolist(),
                      "labels": [int(c) for c in d.labels]} for t, d in zip(times, frames)]
    return atomic_write(path, json.dumps(obj))


def write_detections_hdf5(path: Path, videos: Mapping[str, VideoDetections]) -> Path:
    """Write videos' detections in the ``--detections`` HDF5 layout (one group per key), atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, dets in videos.items():
            counts = np.array([len(d.boxes) for d in dets.frames], dtype=np.int64)
            k_max = int(counts.max(initial=0))
            boxes = np.zeros((len(counts), k_max, 4), dtype=np.float32)
            scores = np.zeros((len(counts), k_max), dtype=np.float32)
            labels = np.full((len(counts), k_max), -1, dtype=np.int64)
            for i, d in enumerate(dets.frames):
                boxes[i, : len(d.boxes)], scores[i, : len(d.boxes)], labels[i, : len(d.boxes)] = d.boxes, d.scores, d.labels
            group = f.create_group(key)
            for name, array in (("times", dets.times.astype(np.float64)), ("num_boxes", counts), ("boxes", boxes),
                                ("scores", scores), ("labels", labels)):
                group.create_dataset(name, data=array)
            if dets.label_names:
                group.create_dataset("label_names", data=list(dets.label_names), dtype=h5py.string_dtype())
    return Path(path)


def _empty_frame() -> FrameDetections:
    return FrameDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
