"""From the passes' tensors to each video's typed ``VideoFeatures``, and the finishing step
that links a whole video's trajectory candidates (seq-NMS, ``extract.linking``).

Boxes are stored in the file's pixels (``DecodedVideo.scale``), whatever the decoded size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from extract.features.detection import head
from extract.features.plan import FramePlan
from extract.features.result import Candidates, StepObjects, VideoFeatures
from extract.geometry import pad_rows, spatial_features
from extract.linking import LinkConfig, link_detections
from extract.models.detector import Detections
from extract.timing import NO_TIMER
from extract.trajectories import trajectory_arrays
from extract.video import DecodedVideo, VideoFile


@dataclass(frozen=True)
class PassOutputs:
    """What the passes computed for one call, indexed by plan row or by clip.

    pooled (Tensor[R, 2048] | None): ResNet avgpool per plan row.
    objects (list[Tensor[K_r, 2048]]): per plan row, RoI features of its top_k boxes.
    detections (dict[int, Detections]): per detected plan row, best first.
    motion_maps (list[Tensor[B, 2048, h, w]]): I3D maps per clip batch; clips are ordered by
        video, then step.
    motion_objects (list[Tensor[N_c, 2048]] | None): per clip, RoI features of its step's boxes.
    """

    pooled: Tensor | None
    objects: list[Tensor]
    detections: dict[int, Detections]
    motion_maps: list[Tensor]
    motion_objects: list[Tensor] | None


def to_source(boxes: Tensor, video: DecodedVideo) -> Tensor:
    """Boxes (Tensor[K, 4], x1, y1, x2, y2) from decoded-frame pixels to the file's pixels."""
    if video.scale == (1.0, 1.0):
        return boxes
    sx, sy = video.scale
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def assemble(
    videos: Sequence[DecodedVideo],
    plan: FramePlan,
    out: PassOutputs,
    *,
    stages: Sequence[str],
    num_objects: int,
    trajectory_candidates: int,
) -> list[VideoFeatures]:
    """Each video's features from the passes of one call (candidates not yet linked)."""
    n, k = num_objects, trajectory_candidates

    def stack(rows: list[Tensor], size: int) -> np.ndarray:
        return torch.stack([pad_rows(r, size) for r in rows]).float().cpu().numpy()

    motion_pooled = None
    if "motion" in stages:
        motion_pooled = torch.cat([fmap.mean(dim=(2, 3)) for fmap in out.motion_maps]).cpu().numpy().astype(np.float32)
    results, offset = [], 0  # offset: the video's first clip
    for v, video in enumerate(videos):
        fields: dict = {}
        rows = plan.step_rows[v]
        if "appearance" in stages:
            fields["appearance"] = out.pooled[torch.from_numpy(rows).to(out.pooled.device)].cpu().numpy().astype(np.float32)
        if "objects" in stages:
            dets = [head(out.detections[r], n) for r in rows]
            fields["objects"] = StepObjects(
                image_features=stack([out.objects[r][:n] for r in rows], n).astype(np.float32),
                spatial_features=stack([spatial_features(d.boxes, video.width, video.height) for d in dets], n).astype(np.float32),
                boxes=stack([to_source(d.boxes, video) for d in dets], n).astype(np.float32),
                scores=stack([d.scores for d in dets], n).astype(np.float32),
                labels=torch.stack([pad_rows(d.labels, n) for d in dets]).cpu().numpy().astype(np.int64),
                num_boxes=np.array([len(d.boxes) for d in dets], dtype=np.int64),
            )
        if motion_pooled is not None:
            t = len(video.steps)
            fields["motion"] = motion_pooled[offset : offset + t]
            if out.motion_objects is not None:
                fields["motion_objects"] = (
                    torch.stack([pad_rows(out.motion_objects[offset + i], n) for i in range(t)]).cpu().numpy().astype(np.float32)
                )
            offset += t
        if "trajectories" in stages:
            fields["candidates"] = _candidates(video, plan.traj_rows[v], out, k)
        results.append(VideoFeatures(**fields))
    return results


def _candidates(video: DecodedVideo, rows: np.ndarray, out: PassOutputs, k: int) -> Candidates:
    """The top ``k`` detections of the video's trajectory frames, padded to ``k`` rows."""
    dets = [head(out.detections[r], k) for r in rows]
    count = np.array([len(d.boxes) for d in dets], np.int64)
    if not dets:  # a part may hold no trajectory frame
        return Candidates(count, None, None, None, None)

    def stack(xs: list[Tensor]) -> np.ndarray:
        return torch.stack([pad_rows(x, k) for x in xs]).cpu().numpy()

    return Candidates(
        count,
        boxes=stack([to_source(d.boxes.float(), video) for d in dets]),
        scores=stack([d.scores.float() for d in dets]),
        labels=stack([d.labels for d in dets]),
        features=stack([out.objects[r][:k] for r in rows]),
    )


def finish(
    features: VideoFeatures,
    video: DecodedVideo | VideoFile,
    *,
    linking: LinkConfig,
    class_names: Sequence[str],
    timer=NO_TIMER,
) -> VideoFeatures:
    """A whole video's features (its parts merged) with its trajectory candidates linked into
    trajectories; features without candidates are returned as they are.

    Args:
        video: the whole video (decoded, or the opened file its parts came from): its
            trajectory frames' times and its duration.
    """
    c = features.candidates
    if c is None:
        return features
    frame_times = video.trajectory_steps / video.sampling.fps  # [F] seconds
    boxes, scores, labels, feats = (
        [torch.from_numpy(x[:n]) for x, n in zip(arrays, c.count)] for arrays in (c.boxes, c.scores, c.labels, c.features)
    )
    with timer("linking"):
        trajs = link_detections(boxes, scores, labels, linking)
        arrays = trajectory_arrays(trajs, feats, boxes, frame_times.tolist(), video.duration, class_names)
    return features.linked(arrays)
