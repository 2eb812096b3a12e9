"""Every array a shard stores, declared once (DESIGN.md section 2).

A video ``K``'s array ``name`` lives at ``shard_path(name, K)``: ``<name>/K`` for a plain
name, ``<group>/K/<field>`` for a grouped one (``detections/boxes`` -> ``detections/K/boxes``).
Its first axis runs over the video's appearance steps (T), its trajectories (N), its
trajectory frames (F) or a vocabulary (L); ``trailing`` gives the rest of the shape, with ``"objects"`` for
``num_objects`` (the step's box slots) and ``"frames"`` for F. The store, ``extract verify``,
``extract inspect``, the visualisation and the bench read names and shapes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CHANNELS = 2048  # ResNet avgpool, C5 and I3D res5 width: every feature vector
Axis = Literal["step", "trajectory", "trajectory_frame", "label"]
AXIS_LETTER = {"step": "T", "trajectory": "N", "trajectory_frame": "F", "label": "L"}
BYTES = "bytes"  # dtype of names: fixed-length bytes of any length


@dataclass(frozen=True)
class ArraySpec:
    """One stored array of a video.

    name: its name (``detections/boxes``); ``shard_path`` places it in a shard.
    axis: what its first axis runs over.
    trailing: the rest of its shape: ints, ``"objects"`` (num_objects) or ``"frames"`` (F).
    dtype: a numpy dtype name, or ``BYTES``.
    nan: whether NaN is a legitimate value (absent trajectory boxes).
    stage: the stage that produces it.
    """

    name: str
    axis: Axis
    trailing: tuple[int | str, ...]
    dtype: str
    stage: str
    nan: bool = False

    def path(self, key: str) -> str:
        return shard_path(self.name, key)

    def dtype_ok(self, dtype: np.dtype) -> bool:
        return dtype.kind == "S" if self.dtype == BYTES else dtype == np.dtype(self.dtype)


ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("appearance", "step", (CHANNELS,), "float32", "appearance"),  # ResNet avgpool per step
    ArraySpec("image_features", "step", ("objects", CHANNELS), "float32", "objects"),  # RoI means on C5, 0 rows past num_boxes
    ArraySpec("spatial_features", "step", ("objects", 6), "float32", "objects"),  # normalised box geometry
    ArraySpec("detections/boxes", "step", ("objects", 4), "float32", "objects"),  # x1, y1, x2, y2, file pixels
    ArraySpec("detections/scores", "step", ("objects",), "float32", "objects"),
    ArraySpec("detections/labels", "step", ("objects",), "int64", "objects"),  # indices into label_names
    ArraySpec("detections/num_boxes", "step", (), "int64", "objects"),  # real rows of the step's slots
    ArraySpec("detections/label_names", "label", (), BYTES, "objects"),  # what labels index (COCO, or the
    #                                                                      --detections file's vocabulary)
    ArraySpec("motion", "step", (CHANNELS,), "float32", "motion"),  # I3D res5, time- and space-averaged
    ArraySpec("motion_objects", "step", ("objects", CHANNELS), "float32", "motion"),  # RoI means on res5
    ArraySpec("trajectories/features", "trajectory", (CHANNELS,), "float32", "trajectories"),
    ArraySpec("trajectories/labels", "trajectory", (), "int64", "trajectories"),
    ArraySpec("trajectories/scores", "trajectory", (), "float32", "trajectories"),
    ArraySpec("trajectories/span", "trajectory", (2,), "float32", "trajectories"),  # [start, end] / duration
    ArraySpec("trajectories/boxes", "trajectory", ("frames", 4), "float32", "trajectories", nan=True),  # NaN: absent
    ArraySpec("trajectories/frame_times", "trajectory_frame", (), "float32", "trajectories"),  # seconds
    ArraySpec("trajectories/label_names", "trajectory", (), BYTES, "trajectories"),
)
SPECS: dict[str, ArraySpec] = {spec.name: spec for spec in ARRAYS}

APPEARANCE = SPECS["appearance"]
IMAGE_FEATURES = SPECS["image_features"]
SPATIAL_FEATURES = SPECS["spatial_features"]
DETECTION_BOXES = SPECS["detections/boxes"]
DETECTION_SCORES = SPECS["detections/scores"]
DETECTION_LABELS = SPECS["detections/labels"]
DETECTION_COUNTS = SPECS["detections/num_boxes"]
DETECTION_LABEL_NAMES = SPECS["detections/label_names"]
MOTION = SPECS["motion"]
MOTION_OBJECTS = SPECS["motion_objects"]
TRAJECTORY_GROUP = "trajectories"  # the shard group of one video's trajectory arrays
TRAJECTORY_BOXES = SPECS["trajectories/boxes"]
TRAJECTORY_FEATURES = SPECS["trajectories/features"]
TRAJECTORY_LABELS = SPECS["trajectories/labels"]


def shard_path(name: str, key: str) -> str:
    """Where array ``name`` of video ``key`` lives inside a shard."""
    group, _, leaf = name.partition("/")
    return f"{group}/{key}/{leaf}" if leaf else f"{group}/{key}"


def nan_allowed(name: str) -> bool:
    """Whether NaN is a legitimate value of array ``name``."""
    spec = SPECS.get(name)
    return spec is not None and spec.nan


def trajectory_name(field: str) -> str:
    """The stored name of a field of ``extract.trajectories.trajectory_arrays``."""
    return f"{TRAJECTORY_GROUP}/{field}"


def check_video(arrays: dict[str, tuple[tuple[int, ...], np.dtype]]) -> list[str]:
    """Problems of one video's arrays (name -> (shape, dtype)) against the layout: unknown
    names, wrong dtypes or ranks, trailing sizes other than declared, and first axes or
    symbolic sizes that disagree between arrays."""
    problems = []
    sizes: dict[str, dict[str, int]] = {}  # axis or symbol -> {array: size}
    for name, (shape, dtype) in sorted(arrays.items()):
        spec = SPECS.get(name)
        if spec is None:
            problems.append(f"{name} is not in the layout")
            continue
        if not spec.dtype_ok(np.dtype(dtype)):
            problems.append(f"{name} has dtype {np.dtype(dtype)}, expected {spec.dtype}")
        if len(shape) != 1 + len(spec.trailing):
            problems.append(f"{name} has shape {tuple(shape)}, expected ({AXIS_LETTER[spec.axis]}, "
                            + ", ".join(map(str, spec.trailing)) + ")")
            continue
        sizes.setdefault(spec.axis, {})[name] = shape[0]
        for want, got in zip(spec.trailing, shape[1:]):
            if isinstance(want, int):
                if got != want:
                    problems.append(f"{name} has shape {tuple(shape)}, expected trailing {spec.trailing}")
            else:
                sizes.setdefault(want, {})[name] = got
    sizes.setdefault("frames", {}).update(sizes.get("trajectory_frame", {}))  # F: frame_times' length
    for what, per_array in sizes.items():
        if len(set(per_array.values())) > 1:
            label = AXIS_LETTER.get(what, what)
            problems.append(f"arrays disagree on {label}: {per_array}")
    return problems
