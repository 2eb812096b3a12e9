"""The detection pass behind one small interface, so that another source of boxes (external
detections, issue 13) can replace the detector without touching the rest.

A ``DetectionSource`` gets the frames to detect on (which video, which decoded frame, at
what time) with their pixels, and returns per frame its boxes, best first, with scores and
labels; ``class_names`` (or, per video, ``label_names``) names the labels. Boxes are in pixels of the decoded frame
(``FrameRef.video.width`` x ``height``); the assembly scales them to the file's pixels
(``DecodedVideo.scale``) when it stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn

from extract.features.passes import unit_float
from extract.models.detector import Detections, Detector, category_names
from extract.video import DecodedVideo, VideoFile


@dataclass(frozen=True)
class FrameRef:
    """One frame to detect on.

    video: the decoded video (its ``path``, frame size and ``scale`` to the file's pixels).
    index: the frame's index into ``video.frames``.
    time: seconds: the first grid time the frame stands for.
    """

    video: DecodedVideo
    index: int
    time: float


class DetectionSource(Protocol):
    """Per-frame detections, best first; what the detection pass needs from a detector."""

    class_names: Sequence[str]  # label -> name

    def detect(self, frames: Sequence[FrameRef], pixels: Sequence[Tensor], top_k: int) -> list[Detections]:
        """
        Args:
            frames: the frames, in order.
            pixels (Sequence[Tensor[H, W, 3] uint8]): each frame's decoded pixels on the model device.
            top_k: boxes wanted per frame (at most; fewer where fewer exist).
        Returns:
            one ``Detections`` per frame: boxes Tensor[K, 4] (x1, y1, x2, y2, decoded-frame
            pixels), scores Tensor[K], labels Tensor[K] int64 into ``class_names``; K <= top_k.
        """
        ...

    def label_names(self, video: DecodedVideo | VideoFile) -> Sequence[str]:
        """The names ``video``'s labels index (stored as ``detections/label_names``); a source
        without this method names every video's labels by ``class_names``."""
        ...


class ModelDetections(nn.Module):
    """The run's Faster R-CNN as a ``DetectionSource``: it reads only the pixels."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector
        self.class_names = category_names()

    def detect(self, frames: Sequence[FrameRef], pixels: Sequence[Tensor], top_k: int) -> list[Detections]:
        return self.detector([unit_float(p) for p in pixels], top_k=top_k)

    def label_names(self, video: DecodedVideo | VideoFile) -> Sequence[str]:
        return self.class_names


def head(d: Detections, k: int) -> Detections:
    """The best ``k`` detections (a prefix: detections are sorted best first)."""
    return Detections(d.boxes[:k], d.scores[:k], d.labels[:k])
