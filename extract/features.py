"""Per-step MASN features for a batch of decoded videos (DESIGN.md section 1).

For each appearance step of each video:
  ResNet      -> global 2048-d (avgpool) and the C5 map
  Faster R-CNN -> top-N boxes; RoIAlign on C5 -> N x 2048 appearance objects + 6-d locations
  I3D (8-frame window) -> res5 map, time-averaged: pooled -> 2048-d motion,
                          RoIAlign on the same boxes -> N x 2048 motion objects

Steps of all videos in a call share model batches; results come back per video, in order.
Each distinct decoded frame goes through ResNet and the detector once, whichever stages need
it: an appearance step and a 1 fps trajectory frame on the same frame share both passes (the
top-10 detections are the first 10 of the top-50 trajectory candidates). The detector can run
in a second thread while ResNet and I3D run in the first (``ModelConfig.overlap_detector``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby

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
from extract.timing import NO_TIMER
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


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads(config: ModelConfig) -> int:
    """Set torch's intra-op CPU threads for a run and return the number set.

    ``config.threads`` > 0 is used as given. 0 (auto) means all cores, except for a CPU run whose
    detector works in its own thread (``overlap_detector``): the two model threads then get half
    the cores each. Two OpenMP pools that together outnumber the cores wait on each other at every
    barrier and run several times slower. The decode thread gets no cores of its own: it spends
    its time in decord's C++ code, a small fraction of the model time.
    """
    if config.threads:
        threads = config.threads
    elif config.overlap_detector and resolve_device(config.device).type == "cpu":
        threads = max(1, cpu_count() // 2)
    else:
        threads = cpu_count()
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class FramePlan:
    """The distinct decoded frames that the stages need, for a list of videos.

    frames: (video, index into ``DecodedVideo.frames``) of every distinct frame, videos first,
        then decode order. ResNet runs once on each, the detector once on each with ``top_k > 0``:
        an appearance step and a trajectory frame on the same decoded frame share both passes.
    top_k (ndarray[R] int64): detections each frame needs: ``num_objects`` for an appearance
        step, ``trajectory_candidates`` for a trajectory frame, the larger for both, 0 for none.
    step_rows, traj_rows (list[ndarray[T]], list[ndarray[F]]): per video, the row in ``frames``
        of each appearance step and of each trajectory frame.
    """

    frames: list[tuple[int, int]]
    top_k: np.ndarray
    step_rows: list[np.ndarray]
    traj_rows: list[np.ndarray]


def plan_frames(
    videos: Sequence[DecodedVideo], *, steps: bool, num_objects: int, trajectory_candidates: int
) -> FramePlan:
    """Distinct frames of ``videos`` needed by the appearance steps (when ``steps``) and by the
    trajectory frames (when ``trajectory_candidates`` > 0); ``num_objects`` 0 = no step detections."""
    empty = np.zeros(0, np.int64)
    frames: list[tuple[int, int]] = []
    top_k, step_rows, traj_rows = [empty], [], []
    for v, video in enumerate(videos):
        step_ids = video.grid[video.steps] if steps else empty
        traj_ids = video.grid[video.trajectory_steps] if trajectory_candidates else empty
        ids = np.unique(np.concatenate([step_ids, traj_ids]))
        at_step, at_traj = np.searchsorted(ids, step_ids), np.searchsorted(ids, traj_ids)
        k = np.zeros(len(ids), np.int64)
        np.maximum.at(k, at_step, num_objects)
        np.maximum.at(k, at_traj, trajectory_candidates)
        step_rows.append(len(frames) + at_step)
        traj_rows.append(len(frames) + at_traj)
        frames.extend((v, int(i)) for i in ids)
        top_k.append(k)
    return FramePlan(frames, np.concatenate(top_k), step_rows, traj_rows)


def _memory_format(config: ModelConfig, device: torch.device, ndim: int) -> torch.memory_format:
    """Memory format of the ResNet (``ndim`` 4) or I3D (5) weights and inputs.

    I3D goes NDHWC everywhere: oneDNN's 3-d convolutions are faster so and give the same
    float32 bits. ResNet goes NHWC on CUDA only: on a CPU the gain is small and the features
    move by ~2e-6 relative (1e-4 absolute at magnitude 100), beyond our 1e-5 budget.
    """
    if not config.channels_last or (ndim == 4 and device.type != "cuda"):
        return torch.contiguous_format
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def _unit_float(pixels: Tensor) -> Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return pixels.movedim(-1, -3).float().div_(255.0)


def _pad_batch(batch: Tensor, size: int) -> Tensor:
    """Zero-pad the first dimension of ``batch`` up to ``size``."""
    if batch.shape[0] >= size:
        return batch
    return torch.cat([batch, batch.new_zeros((size - batch.shape[0], *batch.shape[1:]))])


def _square(images: Tensor, size: int) -> Tensor:
    """Resize [B, 3, H, W] (any H, W) to [B, 3, size, size], antialiased."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _by_video(frames: Sequence[tuple[int, int]]) -> Iterator[tuple[int, list[int]]]:
    """Runs of consecutive frames of one video: (video, frame indices)."""
    for v, run in groupby(frames, key=lambda frame: frame[0]):
        yield v, [i for _, i in run]


def _head(d: Detections, k: int) -> Detections:
    """The best ``k`` detections (a prefix: detections are sorted best first)."""
    return Detections(d.boxes[:k], d.scores[:k], d.labels[:k])


class FeatureExtractor(nn.Module):
    """Holds every model of a run; ``forward`` maps decoded videos to their feature arrays.

    Args:
        appearance, detector, motion: the models of the enabled stages (None when off).
        config: sizes, batch size, RoI settings, precision and memory format.
        stages: enabled stages, a subset of ``extract.config.STAGES``.

    ``timer`` (default: ``NO_TIMER``) receives the sections ``detector``, ``resnet``, ``i3d``,
    ``roialign`` and ``linking``; each model section includes the resizing of its inputs.
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
        self.timer = NO_TIMER
        self._detector_thread: ThreadPoolExecutor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _pad(self, batch: Tensor) -> Tensor:
        # Kernels pick their blocking by batch size; one size for every call makes each
        # sample's result independent of its companions.
        return _pad_batch(batch, self.config.batch_size) if self.config.fixed_batch else batch

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp)

    def _memory_format(self, ndim: int) -> torch.memory_format:
        return _memory_format(self.config, self.device, ndim)

    def _overlap_detector(self) -> bool:
        if not self.config.overlap_detector:
            return False
        # On a CPU, only when the two model threads' OpenMP pools fit on the cores together.
        return self.device.type != "cpu" or 2 * torch.get_num_threads() <= cpu_count()

    def _upload(self, video: DecodedVideo) -> Tensor:
        """The video's decoded frames on the model device: uint8 Tensor[U, H, W, 3] (zero-copy on CPU)."""
        pixels = torch.from_numpy(np.ascontiguousarray(video.frames))
        if self.device.type == "cuda":
            return pixels.pin_memory().to(self.device, non_blocking=True)
        return pixels.to(self.device)

    @torch.inference_mode()
    def forward(self, videos: Sequence[DecodedVideo]) -> list[VideoFeatures]:
        stages = set(self.stages)
        plan = plan_frames(
            videos,
            steps=bool({"appearance", "objects"} & stages),
            num_objects=self.config.num_objects if "objects" in stages else 0,
            trajectory_candidates=self.config.trajectory_candidates if "trajectories" in stages else 0,
        )
        pixels = [self._upload(video) for video in videos]
        detections: dict[int, Detections] = {}
        pending = None
        rows = np.flatnonzero(plan.top_k).tolist()
        if rows:
            if self._overlap_detector():
                if self._detector_thread is None:
                    self._detector_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
                pending = self._detector_thread.submit(self._detect, pixels, plan, rows)
            else:
                detections = self._detect(pixels, plan, rows)
        try:
            pooled, c5_maps = self._resnet(pixels, plan) if plan.frames else (None, [])
            motion_maps = self._motion(videos, pixels) if "motion" in stages else []
            if pending is not None:
                detections = pending.result()
        finally:
            if pending is not None:  # never leave the detector running into a retry
                futures.wait([pending])
        per_video: list[VideoFeatures] = [{} for _ in videos]
        objects = self._frame_objects(videos, plan, c5_maps, detections)
        if {"appearance", "objects"} & stages:
            self._appearance(videos, plan, pooled, objects, detections, per_video)
        if "motion" in stages:
            self._motion_features(videos, plan, motion_maps, detections, per_video)
        if "trajectories" in stages:
            self._trajectories(videos, plan, objects, detections, per_video)
        return per_video

    @torch.inference_mode()  # thread-local: the detector may run in its own thread
    def _detect(self, pixels: list[Tensor], plan: FramePlan, rows: list[int]) -> dict[int, Detections]:
        """Detections of the frames at ``rows`` of ``plan``, each with the largest ``top_k`` asked."""
        top_k = int(plan.top_k.max())
        out: dict[int, Detections] = {}
        for start in range(0, len(rows), self.config.batch_size):
            chunk = rows[start : start + self.config.batch_size]
            with self.timer("detector"):
                images = [_unit_float(pixels[v][i]) for v, i in (plan.frames[r] for r in chunk)]
                out.update(zip(chunk, self.detector(images, top_k=top_k)))
        return out

    def _resnet(self, pixels: list[Tensor], plan: FramePlan) -> tuple[Tensor, list[Tensor]]:
        """ResNet on every frame of the plan: pooled Tensor[R, 2048] and the C5 maps, one
        Tensor[B, 2048, h, w] per batch of rows."""
        size, batch = self.config.architecture.appearance_size, self.config.batch_size
        pooled, maps = [], []
        for start in range(0, len(plan.frames), batch):
            chunk = plan.frames[start : start + batch]
            with self.timer("resnet"):
                images = torch.cat([_square(_unit_float(pixels[v][idx]), size) for v, idx in _by_video(chunk)])
                images = self._pad(images).contiguous(memory_format=self._memory_format(4))
                with self._autocast():
                    p, c5 = self.appearance(images)  # [B, 2048], [B, 2048, h, w]
                pooled.append(p[: len(chunk)].float())
                maps.append(c5[: len(chunk)].float())
        return torch.cat(pooled), maps

    def _motion(self, videos: Sequence[DecodedVideo], pixels: list[Tensor]) -> list[Tensor]:
        """I3D on every step's window: time-averaged res5 maps, one Tensor[B, 2048, h, w] per
        batch of clips (clips ordered by video, then step). Each distinct frame is resized once."""
        size, batch = self.config.architecture.motion_size, self.config.batch_size
        clips = [(v, t) for v, video in enumerate(videos) for t in range(len(video.steps))]
        resized: dict[int, tuple[Tensor, np.ndarray]] = {}  # video -> (frames [U, 3, S, S], windows [T, L])
        maps = []
        for start in range(0, len(clips), batch):
            chunk = clips[start : start + batch]
            with self.timer("i3d"):
                for v in [v for v in resized if v < chunk[0][0]]:
                    del resized[v]
                for v in dict.fromkeys(v for v, _ in chunk):
                    if v not in resized:
                        ids = videos[v].grid[videos[v].windows]  # [T, L] indices into frames
                        unique, inverse = np.unique(ids.ravel(), return_inverse=True)
                        frames = _square(_unit_float(pixels[v][torch.from_numpy(unique).to(self.device)]), size)
                        resized[v] = (frames, inverse.reshape(ids.shape))
                clip_batch = torch.stack(
                    [resized[v][0][torch.from_numpy(resized[v][1][t]).to(self.device)] for v, t in chunk]
                ).movedim(1, 2)  # [B, 3, L, S, S]
                clip_batch = self._pad(clip_batch).contiguous(memory_format=self._memory_format(5))
                with self._autocast():
                    fmap = self.motion(clip_batch)
                maps.append(fmap[: len(chunk)].float().mean(dim=2))  # [B, 2048, h, w], time-averaged
        return maps

    def _roi(self, maps: list[Tensor], boxes: list[Tensor], size: int) -> list[Tensor]:
        """RoI features of ``boxes`` (one Tensor[K_i, 4] per map row, pixels of a size x size
        input) on the rows of ``maps``: one Tensor[K_i, 2048] per row."""
        out: list[Tensor] = []
        start = 0
        for fmap in maps:
            chunk = boxes[start : start + len(fmap)]
            start += len(fmap)
            if not any(len(b) for b in chunk):
                out.extend(fmap.new_zeros((0, fmap.shape[1])) for _ in chunk)
                continue
            with self.timer("roialign"):
                feats = roi_mean_features(
                    fmap,
                    chunk,
                    image_size=(size, size),
                    output_size=self.config.roi_output_size,
                    sampling_ratio=self.config.roi_sampling_ratio,
                    fast=self.config.fast_roi,
                )  # [sum K, 2048]
                out.extend(torch.split(feats, [len(b) for b in chunk]))
        return out

    def _frame_objects(self, videos, plan: FramePlan, c5_maps: list[Tensor], detections: dict[int, Detections]) -> list[Tensor]:
        """Per plan row, RoI features of its ``top_k`` best detections on its C5 map."""
        size = self.config.architecture.appearance_size
        empty = torch.zeros((0, 4), device=self.device)
        boxes = []
        for r, (v, _) in enumerate(plan.frames):
            k = int(plan.top_k[r])
            d = detections[r].boxes[:k] if k else empty
            boxes.append(scale_boxes(d, (videos[v].width, videos[v].height), (size, size)))
        return self._roi(c5_maps, boxes, size)

    def _appearance(self, videos, plan: FramePlan, pooled, objects, detections, per_video) -> None:
        n = self.config.num_objects

        def stack(rows: list[Tensor]) -> np.ndarray:
            return torch.stack([pad_rows(r, n) for r in rows]).float().cpu().numpy()

        for v, video in enumerate(videos):
            rows = plan.step_rows[v]
            record = per_video[v]
            if "appearance" in self.stages:
                record["appearance"] = pooled[torch.from_numpy(rows).to(pooled.device)].cpu().numpy().astype(np.float32)
            if "objects" not in self.stages:
                continue
            dets = [_head(detections[r], n) for r in rows]
            record["image_features"] = stack([objects[r][:n] for r in rows]).astype(np.float32)
            record["spatial_features"] = stack([spatial_features(d.boxes, video.width, video.height) for d in dets]).astype(np.float32)
            record["detections/boxes"] = stack([d.boxes for d in dets]).astype(np.float32)
            record["detections/scores"] = stack([d.scores for d in dets]).astype(np.float32)
            record["detections/labels"] = torch.stack([pad_rows(d.labels, n) for d in dets]).cpu().numpy().astype(np.int64)
            record["detections/num_boxes"] = np.array([len(d.boxes) for d in dets], dtype=np.int64)

    def _motion_features(self, videos, plan: FramePlan, maps: list[Tensor], detections, per_video) -> None:
        size, n = self.config.architecture.motion_size, self.config.num_objects
        pooled = torch.cat([fmap.mean(dim=(2, 3)) for fmap in maps]).cpu().numpy().astype(np.float32)
        objects = None
        if "objects" in self.stages:
            # Each step's own boxes, in the order of the clips (videos, then steps).
            boxes = [
                scale_boxes(detections[r].boxes[:n], (video.width, video.height), (size, size))
                for video, rows in zip(videos, plan.step_rows)
                for r in rows
            ]
            objects = self._roi(maps, boxes, size)
        offset = 0
        for v, video in enumerate(videos):
            t = len(video.steps)
            per_video[v]["motion"] = pooled[offset : offset + t]
            if objects is not None:
                per_video[v]["motion_objects"] = (
                    torch.stack([pad_rows(objects[offset + i], n) for i in range(t)]).cpu().numpy().astype(np.float32)
                )
            offset += t

    def _trajectories(self, videos, plan: FramePlan, objects, detections, per_video) -> None:
        k = self.config.trajectory_candidates
        for v, video in enumerate(videos):
            rows = plan.traj_rows[v]
            dets = [_head(detections[r], k) for r in rows]
            boxes = [d.boxes.float().cpu() for d in dets]
            with self.timer("linking"):
                trajs = link_detections(boxes, [d.scores.cpu() for d in dets], [d.labels.cpu() for d in dets], self.linking)
                arrays = trajectory_arrays(
                    trajs,
                    [objects[r][:k].cpu() for r in rows],
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
            min_size=config.detector_min_size or arch.detector_min_size,
            max_size=config.detector_max_size or arch.detector_max_size,
            score_thresh=config.detector_score_thresh,
            candidates=config.detector_candidates,
            agnostic_nms_iou=config.agnostic_nms_iou,
            batch_size=config.detector_batch_size,
            rpn_pre_nms_top_n=config.detector_rpn_pre_nms_top_n,
            rpn_post_nms_top_n=config.detector_rpn_post_nms_top_n,
            amp=config.amp,
        )
    if "motion" in needed:
        torch.manual_seed(config.seed + 2)
        motion = build_motion(arch=arch.motion_arch, weights=weights["motion"])
    device = resolve_device(config.device)
    if appearance is not None:
        appearance = appearance.to(memory_format=_memory_format(config, device, 4))
    if motion is not None:
        motion = motion.to(memory_format=_memory_format(config, device, 5))
    extractor = FeatureExtractor(
        appearance=appearance, detector=detector, motion=motion, config=config, stages=stages, linking=linking
    )
    return extractor.to(device).eval()


def resolve_all_weights(config: ModelConfig, stages: Sequence[str]) -> dict[str, object]:
    """Checkpoint path (None for random) of every model the stages need; raises WeightsUnavailable first."""
    return {role: resolve_weights(spec, config.weights) for role, spec in required_weights(config, stages).items()}
