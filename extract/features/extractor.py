"""``FeatureExtractor``: the run's models and a schedule; maps decoded videos to ``VideoFeatures``.

Results come back per video, in order. The model work of a call is a list of tasks (I3D
batches, ResNet batches, detector batches, then RoIAlign chunks) that the task pool's threads
take in turn; every task computes the same numbers whichever thread runs it. The schedule
decides the rest: the pipeline's shares frames between passes, batches each video's steps by
a rule of the video alone (``plan.windows``: full batches, then powers of two; nothing padded,
no batch mixing videos) and runs ``model_workers`` threads; the naive baseline's (``NAIVE``)
runs each use of a frame on its own, one batch per call, one detector frame per pass, one thread.

An item may be one part of a long video (``DecodedVideo.part``); its trajectory candidates
wait in ``VideoFeatures.candidates`` until ``finish`` sees the whole video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from extract.config import RunConfig
from extract.features import assemble as assembly
from extract.features.detection import DetectionSource, FrameRef, ModelDetections
from extract.features.passes import appearance_pass, motion_clips, motion_pass, roi_pool, to_device
from extract.features.plan import FramePlan, plan_frames
from extract.features.result import VideoFeatures
from extract.features.runtime import TaskPool, Uploads, detector_batch, memory_format, resolve_device
from extract.geometry import scale_boxes
from extract.sampling import step_batches
from extract.linking import LinkConfig
from extract.models.appearance import AppearanceNet
from extract.models.motion import MotionNet
from extract.timing import NO_TIMER
from extract.video import DecodedVideo, VideoFile


@dataclass(frozen=True)
class Schedule:
    """How a call's work is batched and shared.

    share_frames: one ResNet and detector pass per distinct decoded frame (see ``plan_frames``).
    batch: steps per full ResNet/I3D batch of a video (``plan.windows``); None = all of a
        call's frames (clips) in one pass.
    detector_batch: frames per detector pass, split out of a window's frames by the same rule.
    workers: threads taking the model tasks.
    """

    share_frames: bool
    batch: int | None
    detector_batch: int
    workers: int

    @staticmethod
    def pipeline(config: RunConfig) -> Schedule:
        device = resolve_device(config.runtime.device)
        return Schedule(True, config.runtime.batch_size, detector_batch(config, device), config.runtime.model_workers)


NAIVE = Schedule(share_frames=False, batch=None, detector_batch=1, workers=1)  # the bench's baseline


class FeatureExtractor(nn.Module):
    """Holds every model of a run; ``forward`` maps decoded videos to their ``VideoFeatures``.

    Args:
        appearance, motion: the ResNet and I3D of the enabled stages (None when off).
        detections: the detection pass (None when no stage needs boxes).
        config: sizes, RoI settings, precision, memory format.
        stages: enabled stages, a subset of ``extract.config.STAGES``.
        device: where the models are.
        schedule: batching and sharing; ``Schedule.pipeline(config)`` by default.
        timer: receives the sections ``detector``, ``resnet``, ``i3d``, ``roialign`` and
            ``linking``; each model section includes the resizing of its inputs.
    """

    def __init__(
        self,
        *,
        appearance: AppearanceNet | None,
        detections: DetectionSource | None,
        motion: MotionNet | None,
        config: RunConfig,
        stages: Sequence[str],
        device: torch.device,
        linking: LinkConfig = LinkConfig(),
        schedule: Schedule | None = None,
        timer=NO_TIMER,
    ) -> None:
        super().__init__()
        self.appearance, self.motion, self.detections = appearance, motion, detections
        self.config, self.stages, self.linking, self.device = config, tuple(stages), linking, device
        self.schedule = schedule or Schedule.pipeline(config)
        self.timer = timer
        self.pool = TaskPool(self.schedule.workers, device)
        self._copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None  # uploads
        self.class_names = list(detections.class_names) if detections is not None else []
        # Model inputs run (ResNet and detector frames, I3D clips, as the batches held them) and
        # the distinct ones the stages needed: the bench reports computed per needed input.
        self.computed = self.needed = 0

    def workers(self) -> int:
        """Threads that run this extractor's model tasks side by side."""
        return self.pool.workers()

    def finish(self, features: VideoFeatures, video: DecodedVideo | VideoFile) -> VideoFeatures:
        """A whole video's features with its trajectories linked (``assemble.finish``)."""
        names = self._label_names(video)
        features = assembly.finish(features, video, linking=self.linking, class_names=names or None, timer=self.timer)
        return features.named(names) if features.objects is not None else features

    def _label_names(self, video: DecodedVideo | VideoFile) -> list[str]:
        """What ``video``'s labels index: the source's per-video ``label_names`` where it has them."""
        if self.detections is None:
            return []
        per_video = getattr(self.detections, "label_names", None)
        return list(per_video(video) if per_video is not None else self.detections.class_names)

    def _fmt(self, ndim: int) -> torch.memory_format:
        return memory_format(self.config, self.device, ndim)

    @torch.inference_mode()
    def forward(self, videos: Sequence[DecodedVideo]) -> list[VideoFeatures]:
        stages, config, schedule = set(self.stages), self.config, self.schedule
        plan = plan_frames(
            videos,
            steps=bool({"appearance", "objects"} & stages),
            num_objects=config.detector.num_objects if "objects" in stages else 0,
            trajectory_candidates=config.detector.trajectory_candidates if "trajectories" in stages else 0,
            share=schedule.share_frames,
            batch=schedule.batch,
        )
        pixels = Uploads([video.frames for video in videos], self.device, self._copy_stream)
        clips = [(v, t) for v, video in enumerate(videos) for t in range(len(video.steps))] if "motion" in stages else []
        if schedule.batch is None:
            frame_batches, clip_batches = [range(0, len(plan.frames))], [range(0, len(clips))]
        else:
            frame_batches, clip_batches = plan.batches, plan.clip_batches if clips else []
        frame_batches, clip_batches = [b for b in frame_batches if len(b)], [b for b in clip_batches if len(b)]
        top_k = int(plan.top_k.max()) if len(plan.top_k) else 0
        detector_batches = [  # each frame batch's detected rows, split by the same rule
            [rows[b.start : b.stop] for b in step_batches(len(rows), schedule.detector_batch)]
            for rows in ([r for r in batch if plan.top_k[r]] for batch in frame_batches)
        ]

        pooled: list = [None] * len(frame_batches)
        c5_maps: list = [None] * len(frame_batches)
        motion_maps: list = [None] * len(clip_batches)
        detections: dict = {}
        # Longest tasks first (I3D, ResNet, then detector batches, each the largest first), the
        # powers-of-two tails last: the workers end together. Each task fills its own slot.
        self.pool.run(
            [partial(self._motion_task, videos, pixels, [clips[j] for j in c], motion_maps, i) for i, c in _largest_first(clip_batches)]
            + [partial(self._resnet_task, pixels, [plan.frames[j] for j in c], pooled, c5_maps, i) for i, c in _largest_first(frame_batches)]
            + [partial(self._detect_task, videos, pixels, plan, rows, top_k, detections)
               for _, rows in _largest_first([rows for chunks in detector_batches for rows in chunks])]
        )

        ran_detector = isinstance(self.detections, ModelDetections)
        self.computed += sum(len(p) for p in pooled) + sum(len(m) for m in motion_maps) + len(detections) * ran_detector
        detected = {plan.frames[r] for r in detections} if ran_detector else set()
        self.needed += len(set(plan.frames)) + len(clips) + len(detected)

        size, msize, n = config.appearance.size, config.motion.size, config.detector.num_objects
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
            partial(self._roi_task, c5_maps[i], [frame_boxes[j] for j in c], size, frame_objects, i)
            for i, c in enumerate(frame_batches)
        ]
        if clip_boxes is not None:
            roi_tasks += [
                partial(self._roi_task, motion_maps[i], [clip_boxes[j] for j in c], msize, clip_objects, i)
                for i, c in enumerate(clip_batches)
            ]
        self.pool.run(roi_tasks)

        out = assembly.PassOutputs(
            pooled=torch.cat(pooled) if pooled and {"appearance", "objects"} & stages else None,
            objects=[o for chunk in frame_objects for o in chunk],
            detections=detections,
            motion_maps=motion_maps,
            motion_objects=[o for chunk in clip_objects for o in chunk] if clip_boxes is not None else None,
        )
        return assembly.assemble(
            videos, plan, out, stages=self.stages, num_objects=n, trajectory_candidates=config.detector.trajectory_candidates
        )

    def _detect_task(self, videos, pixels: Uploads, plan: FramePlan, rows: list[int], top_k: int, out: dict) -> None:
        """Detections (best ``top_k``) of the frames at ``rows`` of ``plan``, into ``out[row]``."""
        with self.timer("detector"):
            frames = [plan.frames[r] for r in rows]
            refs = [FrameRef(videos[v], i, float(plan.times[r])) for r, (v, i) in zip(rows, frames)]
            out.update(zip(rows, self.detections.detect(refs, [pixels[v][i] for v, i in frames], top_k)))

    def _resnet_task(self, pixels: Uploads, chunk: list[tuple[int, int]], pooled: list, maps: list, i: int) -> None:
        """ResNet on one batch of plan frames: ``pooled[i]`` Tensor[B, 2048], ``maps[i]`` Tensor[B, 2048, h, w]."""
        with self.timer("resnet"):
            runs = [pixels[v][to_device(np.array(ids), self.device)] for v, ids in _by_video(chunk)]
            pooled[i], maps[i] = appearance_pass(
                self.appearance, runs, size=self.config.appearance.size, memory_format=self._fmt(4), amp=self.config.runtime.amp,
            )

    def _motion_task(self, videos, pixels: Uploads, chunk: list[tuple[int, int]], maps: list, i: int) -> None:
        """I3D on the windows of one batch of (video, step) clips: ``maps[i]`` Tensor[B, 2048, h, w]."""
        size = self.config.motion.size
        with self.timer("i3d"):
            clips = [
                motion_clips(pixels[v], videos[v].grid[videos[v].windows[steps]], size)  # [n, L, 3, S, S]
                for v, steps in _by_video(chunk)
            ]
            maps[i] = motion_pass(self.motion, clips, memory_format=self._fmt(5), amp=self.config.runtime.amp)

    def _roi_task(self, fmap: Tensor, boxes: list[Tensor], size: int, out: list, i: int) -> None:
        """RoI features of ``boxes`` (one Tensor[K_b, 4] per row of ``fmap``): ``out[i]``."""
        if not any(len(b) for b in boxes):
            out[i] = [fmap.new_zeros((0, fmap.shape[1])) for _ in boxes]
            return
        with self.timer("roialign"):
            out[i] = roi_pool(
                fmap, boxes, size=size, output_size=self.config.roi.output_size,
                sampling_ratio=self.config.roi.sampling_ratio, fast=self.config.roi.fast,
            )


def _by_video(chunk: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    """(video, its indices) runs of a batch of (video, index) pairs, in order."""
    runs: list[tuple[int, list[int]]] = []
    for v, i in chunk:
        if not runs or runs[-1][0] != v:
            runs.append((v, []))
        runs[-1][1].append(i)
    return runs


def _largest_first(batches: list) -> list[tuple[int, object]]:
    """(index, batch) pairs, the longest batch first (ties in order)."""
    return sorted(enumerate(batches), key=lambda item: -len(item[1]))
