"""The typed per-video result of the passes, and how a video's parts join into one.

A ``VideoFeatures`` holds what the enabled stages produced for a video (or a part of one):
per-step arrays, and for the trajectories stage first the trajectory-frame detections
(``Candidates``), then, once the whole video is there, its linked ``trajectories``.
``arrays()`` names them as the layout (``extract.layout``) stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from extract import layout


def _cat(arrays: Sequence[np.ndarray | None]) -> np.ndarray | None:
    present = [a for a in arrays if a is not None]
    return np.concatenate(present) if present else None


@dataclass(frozen=True)
class StepObjects:
    """The ``num_objects`` (N) box slots of each of T steps; rows past ``num_boxes`` are 0.

    image_features (ndarray[T, N, 2048] float32): RoI means on the ResNet C5 map.
    spatial_features (ndarray[T, N, 6] float32): box geometry normalised by the frame size.
    boxes (ndarray[T, N, 4] float32): x1, y1, x2, y2 in the file's pixels.
    scores (ndarray[T, N] float32), labels (ndarray[T, N] int64), num_boxes (ndarray[T] int64).
    """

    image_features: np.ndarray
    spatial_features: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    num_boxes: np.ndarray

    @staticmethod
    def join(parts: Sequence[StepObjects]) -> StepObjects:
        return StepObjects(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(StepObjects)))


@dataclass(frozen=True)
class Candidates:
    """The detections of F trajectory frames, K = ``trajectory_candidates`` slots each, that
    seq-NMS links once the whole video is there; rows past ``count`` are 0.

    count (ndarray[F] int64): real rows per frame.
    boxes (ndarray[F, K, 4] float32, file pixels), scores (ndarray[F, K] float32),
    labels (ndarray[F, K] int64), features (ndarray[F, K, 2048] float32): RoI means on C5.
    All but ``count`` are None for a part without trajectory frames.
    """

    count: np.ndarray
    boxes: np.ndarray | None
    scores: np.ndarray | None
    labels: np.ndarray | None
    features: np.ndarray | None

    @staticmethod
    def join(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(
            np.concatenate([p.count for p in parts]),
            *(_cat([getattr(p, name) for p in parts]) for name in ("boxes", "scores", "labels", "features")),
        )


@dataclass(frozen=True)
class VideoFeatures:
    """What the stages produced for one video or part; None for a stage that is off.

    appearance (ndarray[T, 2048] float32), motion (ndarray[T, 2048] float32),
    motion_objects (ndarray[T, N, 2048] float32): see ``extract.layout``.
    candidates: trajectory-frame detections, until ``extract.features.finish`` links them.
    trajectories: the linked arrays, by field (``trajectory_arrays``), once finished.
    label_names (ndarray[L] bytes): what the step detections' labels index, once finished.
    """

    appearance: np.ndarray | None = None
    objects: StepObjects | None = None
    motion: np.ndarray | None = None
    motion_objects: np.ndarray | None = None
    candidates: Candidates | None = None
    trajectories: dict[str, np.ndarray] | None = None
    label_names: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays by layout name; raises while candidates wait to be linked."""
        if self.candidates is not None:
            raise ValueError("trajectory candidates are not linked yet (extract.features.finish)")
        out: dict[str, np.ndarray] = {}
        if self.appearance is not None:
            out[layout.APPEARANCE.name] = self.appearance
        if self.objects is not None:
            o = self.objects
            out.update({
                layout.IMAGE_FEATURES.name: o.image_features,
                layout.SPATIAL_FEATURES.name: o.spatial_features,
                layout.DETECTION_BOXES.name: o.boxes,
                layout.DETECTION_SCORES.name: o.scores,
                layout.DETECTION_LABELS.name: o.labels,
                layout.DETECTION_COUNTS.name: o.num_boxes,
            })
        if self.label_names is not None:
            out[layout.DETECTION_LABEL_NAMES.name] = self.label_names
        if self.motion is not None:
            out[layout.MOTION.name] = self.motion
        if self.motion_objects is not None:
            out[layout.MOTION_OBJECTS.name] = self.motion_objects
        for name, array in (self.trajectories or {}).items():
            out[layout.trajectory_name(name)] = array
        return out

    def named(self, names: Sequence[str]) -> VideoFeatures:
        """These features with the names their detection labels index."""
        return replace(self, label_names=np.array([n.encode() for n in names], dtype=bytes))

    def linked(self, trajectories: dict[str, np.ndarray]) -> VideoFeatures:
        """These features with the candidates replaced by their linked trajectories."""
        return replace(self, candidates=None, trajectories=trajectories)


def merge_parts(parts: Sequence[VideoFeatures]) -> VideoFeatures:
    """One video's features from those of its parts, in order: every array is per step or per
    trajectory frame along its first axis."""
    first = parts[0]
    return VideoFeatures(
        appearance=_cat([p.appearance for p in parts]),
        objects=StepObjects.join([p.objects for p in parts]) if first.objects is not None else None,
        motion=_cat([p.motion for p in parts]),
        motion_objects=_cat([p.motion_objects for p in parts]),
        candidates=Candidates.join([p.candidates for p in parts]) if first.candidates is not None else None,
    )
