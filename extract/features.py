"""Per-step MASN features for a batch of decoded videos (DESIGN.md section 1).

For each appearance step of each video:
  ResNet      -> global 2048-d (avgpool) and the C5 map
  Faster R-CNN -> top-N boxes; RoIAlign on C5 -> N x 2048 appearance objects + 6-d locations
  I3D (8-frame window) -> res5 map, time-averaged: pooled -> 2048-d motion,
                          RoIAlign on the same boxes -> N x 2048 motion objects

Steps of all videos in a call share model batches; results come back per video, in order.
Each distinct decoded frame goes through ResNet and the detector once, whichever stages need
it: an appearance step and a 1 fps trajectory frame on the same frame share both passes (the
top-10 detections are the first 10 of the top-50 trajectory candidates). The model work of a
call is a list of tasks (I3D batches, ResNet batches, detector frames, then RoIAlign chunks)
that ``ModelConfig.model_workers`` threads take in turn; every task computes the same numbers
whichever thread runs it.

An item may be one part of a long video (``DecodedVideo.part``): its per-step arrays come back
as a video's do, its trajectory-frame detections as ``candidates/*`` arrays, which
``merge_parts`` joins and ``link_trajectories`` links once the video's last part is done.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
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
from extract.models.weights import WeightsSpec, resolve_all
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

    ``config.threads`` > 0 is used as given. 0 (auto): on a CPU, the cores divided among the
    ``model_workers`` threads (at least 1 each); on a GPU, all cores. Two OpenMP pools that
    together outnumber the cores wait on each other at every barrier and run several times
    slower. The decode thread gets no cores of its own: it spends its time in decord's C++
    code, a small fraction of the model time.
    """
    if config.threads:
        threads = config.threads
    elif resolve_device(config.device).type == "cpu":
        threads = max(1, cpu_count() // max(1, config.model_workers))
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

    I3D goes NDHWC everywhere: oneDNN runs its 3-d convolutions ~25% faster in that layout,
    with the same float32 bits (measured on the tiny preset). ResNet goes NHWC on CUDA only: on
    a CPU the gain is ~10% and the features move by ~2e-6 relative (2e-4 absolute at the
    magnitude ~100 of random-weight features), beyond the 1e-5 we allow a default.
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
        config: sizes, batch size, RoI settings, precision, memory format, worker threads.
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
        self._pool: ThreadPoolExecutor | None = None  # helper threads of _run, made on first use
        self._pool_size = 0

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

    def workers(self) -> int:
        """Threads that run this extractor's model tasks side by side."""
        workers = max(1, self.config.model_workers)
        if self.device.type == "cpu":
            # Only as many as fit on the cores with their OpenMP pools (see configure_threads).
            workers = min(workers, max(1, cpu_count() // torch.get_num_threads()))
        return workers

    def _run(self, tasks: list[Callable[[], None]]) -> None:
        """Run every task once, on ``workers()`` threads (this one included); re-raise the first error."""
        workers = min(self.workers(), len(tasks))
        if workers <= 1:
            for task in tasks:
                task()
            return
        if self._pool is None or self._pool_size < workers - 1:
            self._pool, self._pool_size = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="model"), workers - 1
        queue, lock, errors = iter(tasks), threading.Lock(), []

        @torch.inference_mode()  # thread-local, like autocast: entered in every worker
        def drain() -> None:
            while not errors:
                with lock:
                    task = next(queue, None)
                if task is None:
                    return
                try:
                    task()
                except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
                    errors.append(e)

        helpers = [self._pool.submit(drain) for _ in range(workers - 1)]
        try:
            drain()
        finally:
            futures.wait(helpers)  # never leave a task running into a retry
        if errors:
            raise errors[0]

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
        batch = self.config.batch_size
        frame_batches = [plan.frames[s : s + batch] for s in range(0, len(plan.frames), batch)]
        clips = [(v, t) for v, video in enumerate(videos) for t in range(len(video.steps))] if "motion" in stages else []
        clip_batches = [clips[s : s + batch] for s in range(0, len(clips), batch)]
        rows = np.flatnonzero(plan.top_k).tolist()
        top_k = int(plan.top_k.max()) if rows else 0
        per_frame = self.config.detector_batch_size

        pooled: list = [None] * len(frame_batches)
        c5_maps: list = [None] * len(frame_batches)
        motion_maps: list = [None] * len(clip_batches)
        detections: dict[int, Detections] = {}
        # Longest tasks first, the fine-grained detector frames last: the workers end together.
        self._run(
            [partial(self._motion_batch, videos, pixels, chunk, motion_maps, i) for i, chunk in enumerate(clip_batches)]
            + [partial(self._resnet_batch, pixels, chunk, pooled, c5_maps, i) for i, chunk in enumerate(frame_batches)]
            + [partial(self._detect, pixels, plan, rows[s : s + per_frame], top_k, detections) for s in range(0, len(rows), per_frame)]
        )

        size, msize, n = self.config.architecture.appearance_size, self.config.architecture.motion_size, self.config.num_objects
        empty = torch.zeros((0, 4), device=self.device)
        frame_boxes = [  # per plan row: its top_k boxes, on the ResNet input
            scale_boxes(detections[r].boxes[: plan.top_k[r]] if plan.top_k[r] else empty, (videos[v].width, videos[v].height), (size, size))
            for r, (v, _) in enumerate(plan.frames)
        ]
        clip_boxes = [  # per clip: its step's boxes, on the I3D input
            scale_boxes(detections[plan.step_rows[v][t]].boxes[:n], (videos[v].width, videos[v].height), (msize, msize))
            for v, t in clips
        ] if "objects" in stages else None
        frame_objects: list = [None] * len(frame_batches)
        clip_objects: list = [None] * len(clip_batches)
        roi_tasks = [
            partial(self._roi, c5_maps[i], frame_boxes[i * batch : (i + 1) * batch], size, frame_objects, i)
            for i in range(len(frame_batches))
        ]
        if clip_boxes is not None:
            roi_tasks += [
                partial(self._roi, motion_maps[i], clip_boxes[i * batch : (i + 1) * batch], msize, clip_objects, i)
                for i in range(len(clip_batches))
            ]
        self._run(roi_tasks)

        per_video: list[VideoFeatures] = [{} for _ in videos]
        objects = [o for chunk in frame_objects for o in chunk]
        if {"appearance", "objects"} & stages:
            self._appearance(videos, plan, torch.cat(pooled), objects, detections, per_video)
        if "motion" in stages:
            motion_objects = [o for chunk in clip_objects for o in chunk] if clip_boxes is not None else None
            self._motion_features(videos, motion_maps, motion_objects, per_video)
        if "trajectories" in stages:
            self._trajectories(videos, plan, objects, detections, per_video)
        return per_video

    def _detect(self, pixels: list[Tensor], plan: FramePlan, rows: list[int], top_k: int, out: dict) -> None:
        """Detections (best ``top_k``) of the frames at ``rows`` of ``plan``, into ``out[row]``."""
        with self.timer("detector"):
            images = [_unit_float(pixels[v][i]) for v, i in (plan.frames[r] for r in rows)]
            out.update(zip(rows, self.detector(images, top_k=top_k)))

    def _resnet_batch(self, pixels: list[Tensor], chunk: list[tuple[int, int]], pooled: list, maps: list, i: int) -> None:
        """ResNet on one batch of plan frames: ``pooled[i]`` Tensor[B, 2048], ``maps[i]`` the C5
        maps Tensor[B, 2048, h, w]."""
        size = self.config.architecture.appearance_size
        with self.timer("resnet"):
            images = torch.cat([_square(_unit_float(pixels[v][idx]), size) for v, idx in _by_video(chunk)])
            images = self._pad(images).contiguous(memory_format=self._memory_format(4))
            with self._autocast():
                p, c5 = self.appearance(images)  # [B, 2048], [B, 2048, h, w]
            pooled[i], maps[i] = p[: len(chunk)].float(), c5[: len(chunk)].float()

    def _motion_batch(self, videos, pixels: list[Tensor], chunk: list[tuple[int, int]], maps: list, i: int) -> None:
        """I3D on the windows of one batch of (video, step) clips: ``maps[i]`` the time-averaged
        res5 maps Tensor[B, 2048, h, w]. Each distinct frame of the batch is resized once."""
        size = self.config.architecture.motion_size
        with self.timer("i3d"):
            clips = []
            for v, steps in groupby(chunk, key=lambda clip: clip[0]):
                ids = videos[v].grid[videos[v].windows[[t for _, t in steps]]]  # [n, L] indices into frames
                unique, inverse = np.unique(ids.ravel(), return_inverse=True)
                frames = _square(_unit_float(pixels[v][torch.from_numpy(unique).to(self.device)]), size)  # [U, 3, S, S]
                clips.append(frames[torch.from_numpy(inverse.reshape(ids.shape)).to(self.device)])  # [n, L, 3, S, S]
            batch = self._pad(torch.cat(clips).movedim(1, 2)).contiguous(memory_format=self._memory_format(5))
            with self._autocast():
                fmap = self.motion(batch)  # [B, 2048, L', h, w]
            maps[i] = fmap[: len(chunk)].float().mean(dim=2)  # time-averaged

    def _roi(self, fmap: Tensor, boxes: list[Tensor], size: int, out: list, i: int) -> None:
        """RoI features of ``boxes`` (one Tensor[K_b, 4] per row of ``fmap``, pixels of a
        size x size input) on the rows of ``fmap``: ``out[i]`` one Tensor[K_b, 2048] per row."""
        if not any(len(b) for b in boxes):
            out[i] = [fmap.new_zeros((0, fmap.shape[1])) for _ in boxes]
            return
        with self.timer("roialign"):
            feats = roi_mean_features(
                fmap,
                boxes,
                image_size=(size, size),
                output_size=self.config.roi_output_size,
                sampling_ratio=self.config.roi_sampling_ratio,
                fast=self.config.fast_roi,
            )  # [sum K, 2048]
            out[i] = list(torch.split(feats, [len(b) for b in boxes]))

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
            record["detections/boxes"] = stack([_to_source(d.boxes, video) for d in dets]).astype(np.float32)
            record["detections/scores"] = stack([d.scores for d in dets]).astype(np.float32)
            record["detections/labels"] = torch.stack([pad_rows(d.labels, n) for d in dets]).cpu().numpy().astype(np.int64)
            record["detections/num_boxes"] = np.array([len(d.boxes) for d in dets], dtype=np.int64)

    def _motion_features(self, videos, maps: list[Tensor], objects: list[Tensor] | None, per_video) -> None:
        n = self.config.num_objects
        pooled = torch.cat([fmap.mean(dim=(2, 3)) for fmap in maps]).cpu().numpy().astype(np.float32)
        offset = 0  # clips are ordered by video, then step
        for v, video in enumerate(videos):
            t = len(video.steps)
            per_video[v]["motion"] = pooled[offset : offset + t]
            if objects is not None:
                per_video[v]["motion_objects"] = (
                    torch.stack([pad_rows(objects[offset + i], n) for i in range(t)]).cpu().numpy().astype(np.float32)
                )
            offset += t

    def _trajectories(self, videos, plan: FramePlan, objects, detections, per_video) -> None:
        """Each video's trajectory-frame detections as ``candidates/*`` arrays, linked at once
        for a whole video; a part keeps them until ``link_trajectories`` sees the whole video."""
        k = self.config.trajectory_candidates
        for v, video in enumerate(videos):
            rows = plan.traj_rows[v]
            dets = [_head(detections[r], k) for r in rows]
            candidates = {
                "boxes": [_to_source(d.boxes.float(), video) for d in dets],
                "scores": [d.scores.float() for d in dets],
                "labels": [d.labels for d in dets],
                "features": [objects[r][:k] for r in rows],
            }
            record = per_video[v]
            record[CANDIDATES + "count"] = np.array([len(d.boxes) for d in dets], np.int64)
            if dets:  # a part may hold no trajectory frame (merge_parts skips it)
                record.update({CANDIDATES + name: torch.stack([pad_rows(x, k) for x in xs]).cpu().numpy()
                               for name, xs in candidates.items()})
            if video.is_whole:
                self.link_trajectories(record, video.trajectory_steps / video.sampling.fps, video.duration)

    def link_trajectories(self, features: VideoFeatures, frame_times: np.ndarray, duration: float) -> None:
        """Replace the ``candidates/*`` arrays of a whole video's ``features`` (its parts
        concatenated) by its ``trajectories/*``.

        Args:
            frame_times (ndarray[F]): seconds of the video's trajectory frames.
            duration: the video's duration in seconds.
        """
        count = features.pop(CANDIDATES + "count")
        cand = {name: [torch.from_numpy(x[:c]) for x, c in zip(features.pop(CANDIDATES + name), count)]
                for name in CANDIDATE_FIELDS}
        with self.timer("linking"):
            trajs = link_detections(cand["boxes"], cand["scores"], cand["labels"], self.linking)
            arrays = trajectory_arrays(trajs, cand["features"], cand["boxes"], frame_times.tolist(), duration, self.class_names)
        features.update({f"trajectories/{name}": array for name, array in arrays.items()})


CANDIDATES = "candidates/"  # the trajectory-frame detections of a part, linked once its video is whole
CANDIDATE_FIELDS = ("boxes", "scores", "labels", "features")


def _to_source(boxes: Tensor, video: DecodedVideo) -> Tensor:
    """Boxes (Tensor[K, 4], x1, y1, x2, y2) from decoded-frame pixels to the file's pixels."""
    if video.scale == (1.0, 1.0):
        return boxes
    sx, sy = video.scale
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def merge_parts(parts: Sequence[VideoFeatures]) -> VideoFeatures:
    """One video's features from those of its parts, in order: every array is per step or per
    trajectory frame along its first axis."""
    names = dict.fromkeys(name for p in parts for name in p)
    return {name: np.concatenate([p[name] for p in parts if name in p]) for name in names}


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
    """Checkpoint path (None for random) of every model the stages need; WeightsUnavailable names every
    missing or bad file at once."""
    return resolve_all(required_weights(config, stages), config.weights)
