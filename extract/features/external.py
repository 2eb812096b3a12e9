"""External detections (``--detections``, ``extract.detections``) as the features' ``DetectionSource``.

Each frame the detection pass asks for takes the external frame nearest to its time within
the tolerance (``VideoDetections.at``), else zero boxes; boxes go from the file's pixels to the
decoded frame's (``DecodedVideo.scale``) and are cut to ``top_k``. Labels index the video's
own vocabulary (``label_names``), which the extractor stores with the video's features. A
video whose detections do not validate raises ``DetectionError`` and fails alone (the worker
retries a failed batch video by video).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from extract.config import RunConfig
from extract.detections import DetectionSource as FileSource
from extract.detections import VideoDetections, default_tolerance
from extract.features.detection import FrameRef
from extract.models.detector import Detections
from extract.video import DecodedVideo, VideoFile

CACHED_VIDEOS = 64  # videos whose parsed detections are kept: more than a batch ever holds


class ExternalDetections:
    """Boxes read from files instead of a detector.

    Args:
        source: the ``--detections`` directory or HDF5 file, with its missing policy.
        keys: video file path (``DecodedVideo.path``) -> video key (the file's entry).
        tolerance: seconds between a frame time and the external frame it takes.
    """

    class_names: Sequence[str] = ()  # labels index each video's own label_names (``label_names``)

    def __init__(self, source: FileSource, keys: Mapping[str, str], tolerance: float) -> None:
        self.source, self.keys, self.tolerance = source, dict(keys), tolerance
        self._cache: OrderedDict[str, VideoDetections] = OrderedDict()
        self._lock = threading.Lock()  # detection tasks of one call run on several threads

    def video(self, video: DecodedVideo | VideoFile) -> VideoDetections:
        """The validated detections of ``video`` (bounds checked against the file's frame size)."""
        path = str(video.path)
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        key = self.keys.get(path)
        if key is None:
            raise KeyError(f"{path}: no video key known for this file (ExternalDetections.keys)")
        dets = self.source.load(key, frame_size=tuple(video.source_size))
        with self._lock:
            self._cache[path] = dets
            while len(self._cache) > CACHED_VIDEOS:
                self._cache.popitem(last=False)
        return dets

    def label_names(self, video: DecodedVideo | VideoFile) -> Sequence[str]:
        return self.video(video).label_names

    def detect(self, frames: Sequence[FrameRef], pixels: Sequence[Tensor], top_k: int) -> list[Detections]:
        out = []
        for ref, image in zip(frames, pixels):
            (d,) = self.video(ref.video).at([ref.time], self.tolerance)
            sx, sy = ref.video.scale
            boxes = torch.from_numpy(d.boxes[:top_k]) / torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
            out.append(Detections(boxes.to(image.device), torch.from_numpy(d.scores[:top_k]).to(image.device),
                                  torch.from_numpy(d.labels[:top_k]).to(image.device)))
        return out


def external_detections(config: RunConfig, keys: Mapping[str, str]) -> ExternalDetections | None:
    """The run's external detections (None without ``detections.path``).

    Args:
        keys: video file path -> key, for the videos this process extracts.
    """
    d = config.detections
    if d.path is None:
        return None
    tolerance = d.tolerance_s if d.tolerance_s is not None else default_tolerance(config.sampling.fps)
    return ExternalDetections(FileSource(d.path, missing=d.missing), keys, tolerance)
