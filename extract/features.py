"""Per-step MASN features for a batch of decoded videos (DESIGN.md section 1).

For each appearance step of each video:
  ResNet      -> global 2048-d (avgpool) and the C5 map
  Faster R-CNN -> top-N boxes; RoIAlign on C5 -> N x 2048 appearance objects + 6-d locations
  I3D (8-frame window) -> res5 map, time-averaged: pooled -> 2048-d motion,
                          RoIAlign on the same boxes -> N x 2048 motion objects

Steps of all videos in a call share model batches; results come back per video, in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from extract.config import ModelConfig
from extract.geometry import pad_rows, roi_mean_features, scale_boxes, spatial_features
from extract.models.appearance import APPEARANCE_WEIGHTS, AppearanceNet, build_appearance
from extract.linking import LinkConfig, link_detections
from extract.models.detector import DETECTOR_WEIGHTS, Detections, Detector, build_detector, category_names
from extract.models.motion import MOTION_WEIGHTS, MotionNet, build_motion
from extract.models.weights import WeightsSpec, resolve_weights
from extract.trajectories import trajectory_arrays
from extract.video import DecodedVideo

VideoFeatures = dict[str, np.ndarray]


def required_weights(config: ModelConfig, stages: Sequence[str]) -> dict[str, WeightsSpec]:
    """The checkpoints the given stages need, keyed by model role."""
    arch = config.architecture
    needed = {}
    if {"appearance", "objects", "trajectories"} & set(stages):
        needed["appearance"] = APPEARANCE_WEIGHTS[arch.appearance_arch]
    if {"objects", "trajectories"} & set(stages):
        needed["detector"] = DETECTOR_WEIGHTS[arch.detector_arch]
    if "motion" in stages:
        needed["motion"] = MOTION_WEIGHTS[arch.motion_arch]
    return needed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class _Step:
    """One appearance step: which video, which step, and its frame."""

    video: int
    step: int
    frame: np.ndarray  # [H, W, 3] uint8


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_float(frame: np.ndarray, device: torch.device) -> Tensor:
    """[H, W, 3] uint8 (or [L, H, W, 3]) -> [3, H, W] (or [3, L, H, W]) float in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frame)).to(device)
    return t.movedim(-1, 0).float().div_(255.0)


def _pad_batch(batch: Tensor, size: int) -> Tensor:
    """Zero-pad the first dimension of ``batch`` up to ``size``."""
    if batch.shape[0] >= size:
        return batch
    return torch.cat([batch, batch.new_zeros((size - batch.shape[0], *batch.shape[1:]))])


def _square(images: Tensor, size: int) -> Tensor:
    """Resize [B, 3, H, W] (any H, W) to [B, 3, size, size], antialiased."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class FeatureExtractor(nn.Module):
    """Holds every model of a run; ``forward`` maps decoded videos to their feature arrays.

    Args:
        appearance, detector, motion: the models of the enabled stages (None when off).
        config: sizes, batch size and RoI settings.
        stages: enabled stages, a subset of ``extract.config.STAGES``.
    """

    def __init__(
        self,
        *,
        appearance: AppearanceNet | None,
        detector: Detector | None,
        motion: MotionNet | None,
        config: ModelConfig,
        stages: Sequence[str],
        linking: LinkConfig = LinkConfig(),
    ) -> None:
        super().__init__()
        self.appearance, self.detector, self.motion = appearance, detector, motion
        self.config = config
        self.stages = tuple(stages)
        self.linking = linking
        self.class_names = category_names()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _pad(self, batch: Tensor) -> Tensor:
        # Kernels pick their blocking by batch size; one size for every call makes each
        # sample's result independent of its companions.
        return _pad_batch(batch, self.config.batch_size) if self.config.fixed_batch else batch

    @torch.inference_mode()
    def forward(self, videos: Sequence[DecodedVideo]) -> list[VideoFeatures]:
        per_video: list[VideoFeatures] = [{} for _ in videos]
        if {"appearance", "objects"} & set(self.stages):
            self._appearance(videos, per_video)
        if "motion" in self.stages:
            self._motion(videos, per_video)
        if "trajectories" in self.stages:
            self._trajectories(videos, per_video)
        return per_video

    def _frames(self, videos: Sequence[DecodedVideo], grid_indices) -> list[_Step]:
        """Frames of every video at ``grid_indices(video)``, videos first, then time."""
        return [
            _Step(v, s, frame)
            for v, video in enumerate(videos)
            for s, frame in enumerate(video.grid_frames(grid_indices(video)))
        ]

    def _detect(self, steps: list[_Step], top_k: int) -> list[Detections]:
        out: list[Detections] = []
        for chunk in _chunks(steps, self.config.batch_size):
            out.extend(self.detector([_to_float(s.frame, self.device) for s in chunk], top_k=top_k))
        return out

    def _resnet(self, videos, steps: list[_Step], detections: list[Detections] | None) -> tuple[Tensor, list[Tensor]]:
        """ResNet on every step frame: pooled Tensor[S, 2048] and, per step, RoI features
        Tensor[K_s, 2048] of its detections on the C5 map of the same pass."""
        size = self.config.architecture.appearance_size
        pooled_all, objects = [], []
        for start in range(0, len(steps), self.config.batch_size):
            chunk = steps[start : start + self.config.batch_size]
            images = torch.stack([_square(_to_float(s.frame, self.device)[None], size)[0] for s in chunk])
            pooled, c5 = self.appearance(self._pad(images))  # [B, 2048], [B, 2048, h, w]
            pooled_all.append(pooled[: len(chunk)])
            if detections is not None:
                boxes = [
                    scale_boxes(d.boxes, (videos[s.video].width, videos[s.video].height), (size, size))
                    for s, d in zip(chunk, detections[start : start + len(chunk)])
                ]
                feats = roi_mean_features(
                    c5[: len(chunk)],
                    boxes,
                    image_size=(size, size),
                    output_size=self.config.roi_output_size,
                    sampling_ratio=self.config.roi_sampling_ratio,
                )  # [sum K, 2048]
                objects.extend(torch.split(feats, [len(b) for b in boxes]))
        return torch.cat(pooled_all), objects

    def _appearance(self, videos, per_video) -> None:
        steps = self._frames(videos, lambda video: video.steps)
        detections = self._detect(steps, self.config.num_objects) if "objects" in self.stages else None
        pooled, objects = self._resnet(videos, steps, detections)
        n = self.config.num_objects
        for v, video in enumerate(videos):
            idx = [i for i, s in enumerate(steps) if s.video == v]
            record = per_video[v]
            if "appearance" in self.stages:
                record["appearance"] = pooled[idx].cpu().numpy().astype(np.float32)
            if detections is None:
                continue
            dets = [detections[i] for i in idx]

            def stack(rows: list[Tensor]) -> np.ndarray:
                return torch.stack([pad_rows(r, n) for r in rows]).cpu().numpy()

            record["image_features"] = stack([objects[i] for i in idx]).astype(np.float32)
            record["spatial_features"] = stack([spatial_features(d.boxes, video.width, video.height) for d in dets]).astype(np.float32)
            record["detections/boxes"] = stack([d.boxes for d in dets]).astype(np.float32)
            record["detections/scores"] = stack([d.scores for d in dets]).astype(np.float32)
            record["detections/labels"] = stack([d.labels for d in dets]).astype(np.int64)
            record["detections/num_boxes"] = np.array([len(d.boxes) for d in dets], dtype=np.int64)

    def _motion(self, videos, per_video) -> None:
        size = self.config.architecture.motion_size
        clips = [(v, t, window) for v, video in enumerate(videos) for t, window in enumerate(video.windows)]
        box_lists = None
        if "objects" in self.stages:
            # Each step's boxes, in the order of `clips` (both walk videos, then steps).
            box_lists = [
                scale_boxes(torch.from_numpy(per_video[v]["detections/boxes"][t, : per_video[v]["detections/num_boxes"][t]]).to(self.device),
                            (videos[v].width, videos[v].height), (size, size))
                for v, t, _ in clips
            ]
        pooled_all, objects = [], []
        for start in range(0, len(clips), self.config.batch_size):
            chunk = clips[start : start + self.config.batch_size]
            batch = torch.stack([
                _square(_to_float(videos[v].grid_frames(window), self.device).movedim(1, 0), size).movedim(0, 1)
                for v, _, window in chunk
            ])  # [B, 3, L, S, S]
            fmap = self.motion(self._pad(batch))[: len(chunk)].mean(dim=2)  # [B, 2048, h, w], time-averaged
            pooled_all.append(fmap.mean(dim=(2, 3)))
            if box_lists is not None:
                boxes = box_lists[start : start + len(chunk)]
                feats = roi_mean_features(
                    fmap,
                    boxes,
                    image_size=(size, size),
                    output_size=self.config.roi_output_size,
                    sampling_ratio=self.config.roi_sampling_ratio,
                )
                objects.extend(torch.split(feats, [len(b) for b in boxes]))
        pooled = torch.cat(pooled_all).cpu().numpy().astype(np.float32)
        offset = 0  # clips are ordered by video, then step
        for v, video in enumerate(videos):
            t = len(video.steps)
            per_video[v]["motion"] = pooled[offset : offset + t]
            if box_lists is not None:
                per_video[v]["motion_objects"] = torch.stack(
                    [pad_rows(objects[offset + i], self.config.num_objects) for i in range(t)]
                ).cpu().numpy().astype(np.float32)
            offset += t


    def _trajectories(self, videos, per_video) -> None:
        frames = self._frames(videos, lambda video: video.trajectory_steps)
        detections = self._detect(frames, self.config.trajectory_candidates)
        _, features = self._resnet(videos, frames, detections)
        for v, video in enumerate(videos):
            idx = [i for i, s in enumerate(frames) if s.video == v]
            dets = [detections[i] for i in idx]
            boxes = [d.boxes.cpu() for d in dets]
            trajs = link_detections(boxes, [d.scores.cpu() for d in dets], [d.labels.cpu() for d in dets], self.linking)
            arrays = trajectory_arrays(
                trajs,
                [features[i].cpu() for i in idx],
                boxes,
                (video.trajectory_steps / video.sampling.fps).tolist(),
                video.duration,
                self.class_names,
            )
            per_video[v].update({f"trajectories/{name}": array for name, array in arrays.items()})


def build_extractor(
    config: ModelConfig,
    stages: Sequence[str],
    weights: dict[str, object] | None = None,
    linking: LinkConfig = LinkConfig(),
) -> FeatureExtractor:
    """Build the models the stages need, on ``config.device``.

    Args:
        weights: resolved checkpoint path (or None for random) per role, as returned by
            ``resolve_all_weights``; resolved here when not given.
        linking: seq-NMS settings of the trajectories stage.
    """
    if weights is None:
        weights = resolve_all_weights(config, stages)
    arch = config.architecture
    needed = required_weights(config, stages)
    # Seeding before each model makes random weights independent of which stages are on.
    appearance = detector = motion = None
    if "appearance" in needed:
        torch.manual_seed(config.seed)
        appearance = build_appearance(arch=arch.appearance_arch, weights=weights["appearance"])
    if "detector" in needed:
        torch.manual_seed(config.seed + 1)
        detector = build_detector(
            arch=arch.detector_arch,
            weights=weights["detector"],
            min_size=arch.detector_min_size,
            max_size=arch.detector_max_size,
            score_thresh=config.detector_score_thresh,
            candidates=config.detector_candidates,
            agnostic_nms_iou=config.agnostic_nms_iou,
            batch_size=config.detector_batch_size,
        )
    if "motion" in needed:
        torch.manual_seed(config.seed + 2)
        motion = build_motion(arch=arch.motion_arch, weights=weights["motion"])
    extractor = FeatureExtractor(
        appearance=appearance, detector=detector, motion=motion, config=config, stages=stages, linking=linking
    )
    return extractor.to(resolve_device(config.device)).eval()


def resolve_all_weights(config: ModelConfig, stages: Sequence[str]) -> dict[str, object]:
    """Checkpoint path (None for random) of every model the stages need; raises WeightsUnavailable first."""
    return {role: resolve_weights(spec, config.weights) for role, spec in required_weights(config, stages).items()}
