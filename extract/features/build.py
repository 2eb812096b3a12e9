"""Building a run's models: which checkpoints the stages need, and the extractor that holds them."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from extract.config import RunConfig
from extract.features.detection import DetectionSource, ModelDetections
from extract.features.extractor import NAIVE, FeatureExtractor
from extract.features.runtime import detector_batch, memory_format, resolve_device
from extract.linking import LinkConfig
from extract.models.appearance import APPEARANCE_WEIGHTS, build_appearance
from extract.models.detector import DETECTOR_WEIGHTS, Detector, build_detector
from extract.models.motion import MOTION_WEIGHTS, build_motion
from extract.models.onednn import use_onednn_pointwise
from extract.models.weights import WeightsSpec, resolve_all
from extract.timing import NO_TIMER


def required_weights(config: RunConfig, stages: Sequence[str]) -> dict[str, WeightsSpec]:
    """The checkpoints the given stages need, keyed by model role."""
    needed = {}
    if {"appearance", "objects", "trajectories"} & set(stages):
        needed["appearance"] = APPEARANCE_WEIGHTS[config.appearance.arch]
    if {"objects", "trajectories"} & set(stages) and config.detections.path is None:  # else boxes come from files
        needed["detector"] = DETECTOR_WEIGHTS[config.detector.arch]
    if "motion" in stages:
        needed["motion"] = MOTION_WEIGHTS[config.motion.arch]
    return needed


def resolve_all_weights(config: RunConfig, stages: Sequence[str]) -> dict[str, object]:
    """Checkpoint path (None for random) of every model the stages need; WeightsUnavailable names every
    missing or bad file at once."""
    return resolve_all(required_weights(config, stages), config.weights)


def build_extractor(
    config: RunConfig,
    stages: Sequence[str],
    weights: dict[str, object] | None = None,
    linking: LinkConfig = LinkConfig(),
    *,
    detections: DetectionSource | None = None,
    timer=NO_TIMER,
) -> FeatureExtractor:
    """Build the models the stages need, on ``config.runtime.device``.

    Args:
        weights: resolved checkpoint path (or None for random) per role, as returned by
            ``resolve_all_weights``; resolved here when not given.
        linking: seq-NMS settings of the trajectories stage.
        detections: a detection source to use instead of building the detector (external
            detections, ``extract.features.external``); None = the run's Faster R-CNN. A config
            with ``detections.path`` needs one: its weights were never resolved.
        timer: the extractor's section timer (``extract.timing``).
    """
    if weights is None:
        weights = resolve_all_weights(config, stages)
    needed = required_weights(config, stages)
    device = resolve_device(config.runtime.device)
    # Seeding before each model makes random weights independent of which stages are on.
    appearance = motion = None
    if "appearance" in needed:
        torch.manual_seed(config.seed)
        appearance = build_appearance(arch=config.appearance.arch, weights=weights["appearance"])
        appearance = use_onednn_pointwise(appearance.to(memory_format=memory_format(config, device, 4)).to(device).eval())
    if detections is None and config.detections.path is not None and {"objects", "trajectories"} & set(stages):
        raise ValueError("detections.path is set: pass the ExternalDetections (extract.features.external) as detections")
    if "detector" in needed and detections is None:
        torch.manual_seed(config.seed + 1)
        detections = ModelDetections(build_detector(
            arch=config.detector.arch,
            weights=weights["detector"],
            min_size=config.detector.min_size,
            max_size=config.detector.max_size,
            score_thresh=config.detector.score_thresh,
            candidates=config.detector.candidates,
            agnostic_nms_iou=config.detector.agnostic_nms_iou,
            batch_size=detector_batch(config, device),
            rpn_pre_nms_top_n=config.detector.rpn_pre_nms_top_n,
            rpn_post_nms_top_n=config.detector.rpn_post_nms_top_n,
            amp=config.runtime.amp,
        ).to(device).eval())
    if "motion" in needed:
        torch.manual_seed(config.seed + 2)
        motion = build_motion(arch=config.motion.arch, weights=weights["motion"])
        motion = use_onednn_pointwise(motion.to(memory_format=memory_format(config, device, 5)).to(device).eval())
    return FeatureExtractor(
        appearance=appearance, detections=detections, motion=motion, config=config, stages=stages, device=device,
        linking=linking, timer=timer,
    ).eval()


def naive_extractor(extractor: FeatureExtractor, config: RunConfig, *, timer=NO_TIMER) -> FeatureExtractor:
    """The bench's baseline on ``extractor``'s weights: float32 NCHW copies of ResNet and I3D,
    the detector one frame at a time without autocast, and the ``NAIVE`` schedule.

    Args:
        config: the baseline's model settings (the speed options off).
    """

    def plain(module):  # as public scripts run them: torch's own kernel choice
        if module is None:
            return None
        return use_onednn_pointwise(copy.deepcopy(module), enabled=False).to(memory_format=torch.contiguous_format).float()

    detections = extractor.detections
    if isinstance(detections, ModelDetections):
        d = detections.detector
        detections = ModelDetections(Detector(d.model, agnostic_nms_iou=d.agnostic_nms_iou, batch_size=1, amp=False))
    return FeatureExtractor(
        appearance=plain(extractor.appearance), detections=detections, motion=plain(extractor.motion), config=config,
        stages=extractor.stages, device=extractor.device, linking=extractor.linking, schedule=NAIVE, timer=timer,
    ).eval()
