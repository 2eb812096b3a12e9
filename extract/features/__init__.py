"""Per-step MASN features and trajectories of decoded videos (DESIGN.md section 1).

For each appearance step of each video:
  ResNet      -> global 2048-d (avgpool) and the C5 map
  Faster R-CNN -> top-N boxes; RoIAlign on C5 -> N x 2048 appearance objects + 6-d locations
  I3D (8-frame window) -> res5 map, time-averaged: pooled -> 2048-d motion,
                          RoIAlign on the same boxes -> N x 2048 motion objects
and for each 1 fps trajectory frame the top trajectory candidates, linked by seq-NMS once
the whole video is there.

Modules: ``plan`` (which decoded frames each pass needs), ``passes`` (the model passes as
functions), ``detection`` (the detection pass's interface), ``result`` (the typed per-video
result), ``assemble`` (tensors -> result; linking), ``extractor`` (the models and a schedule),
``build`` (models from a config), ``runtime`` (device, threads, the task pool).

Names are imported lazily: decode and write workers import ``extract.features.result``
without loading the models.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FeatureExtractor": "extractor",
    "Schedule": "extractor",
    "NAIVE": "extractor",
    "build_extractor": "build",
    "naive_extractor": "build",
    "required_weights": "build",
    "resolve_all_weights": "build",
    "VideoFeatures": "result",
    "merge_parts": "result",
    "FramePlan": "plan",
    "plan_frames": "plan",
    "DetectionSource": "detection",
    "FrameRef": "detection",
    "auto_threads": "runtime",
    "configure_threads": "runtime",
    "cpu_count": "runtime",
    "resolve_device": "runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'extract.features' has no attribute {name!r}")
    return getattr(importlib.import_module(f"extract.features.{_EXPORTS[name]}"), name)
