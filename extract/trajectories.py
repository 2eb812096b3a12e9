"""Per-video trajectory arrays, as stored under ``/trajectories/K/`` in the shards.

Following "Rethinking Multi-Modal Alignment in Video Question Answering from Feature and
Sample Perspectives" (NExT-QA, 2022, section 3.1), each trajectory found by
:func:`extract.linking.link_detections` is described by the average of its objects' RoI
features, its label, its score and its start-end time normalised by the video length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from extract.linking import Trajectory

__all__ = ["trajectory_arrays"]


def trajectory_arrays(
    trajs: list[Trajectory],
    roi_features: Sequence[Tensor],
    boxes: Sequence[Tensor],
    frame_times: Sequence[float],
    duration: float,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Assemble the arrays of one video's trajectories.

    Args:
        trajs (list[Trajectory]): N trajectories over the F trajectory frames.
        roi_features (Sequence[Tensor[K_f, C]]): per trajectory frame, one feature per box
            (a ``(0, C)`` tensor for a frame without boxes).
        boxes (Sequence[Tensor[K_f, 4]]): the boxes the trajectories index, ``(x1, y1, x2, y2)``
            pixels.
        frame_times (Sequence[float]): F strictly increasing trajectory-frame times in seconds.
        duration (float): the video duration D in seconds, > the last frame time.
        class_names (Sequence[str] | None): class names indexed by label; when given,
            ``label_names`` is added.

    Returns:
        dict[str, np.ndarray]:
            ``features`` (N, C) float32: mean RoI feature over the trajectory's boxes;
            ``labels`` (N,) int64; ``scores`` (N,) float32;
            ``span`` (N, 2) float32: ``[start, end]`` normalised to [0, 1]. A trajectory
            frame stands for the time until the next one (sample and hold, as the frame grid
            does), so ``start = t[first] / D`` and ``end = t[last + 1] / D``, with
            ``t[F] = D``: a trajectory seen in the last frame lasts to the end of the video;
            ``boxes`` (N, F, 4) float32: NaN where the trajectory has no box;
            ``frame_times`` (F,) float32;
            ``label_names`` (N,) bytes, only when names are given.
        N = 0 gives empty arrays with the same trailing shapes.
    """
    num_frames = len(frame_times)
    if len(roi_features) != num_frames or len(boxes) != num_frames:
        raise ValueError(
            "roi_features, boxes and frame_times: expected one entry per trajectory frame each, got "
            f"{len(roi_features)}, {len(boxes)} and {num_frames}"
        )
    if num_frames == 0:
        raise ValueError("frame_times: expected at least one trajectory frame, got 0")
    times = np.asarray(frame_times, dtype=np.float64)
    if not np.isfinite(times).all() or times[0] < 0 or (np.diff(times) <= 0).any():
        raise ValueError(f"frame_times: expected strictly increasing times >= 0, got {times.tolist()}")
    if not duration > times[-1]:
        raise ValueError(f"duration: expected > the last frame time {times[-1]}, got {duration!r}")
    if roi_features[0].ndim != 2:
        raise ValueError(f"roi_features[0]: expected shape (K, C), got {tuple(roi_features[0].shape)}")
    channels = roi_features[0].shape[1]
    for f, (feat, box) in enumerate(zip(roi_features, boxes)):
        if feat.ndim != 2 or feat.shape[1] != channels:
            raise ValueError(f"roi_features[{f}]: expected shape (K, {channels}), got {tuple(feat.shape)}")
        if tuple(box.shape) != (feat.shape[0], 4):
            raise ValueError(
                f"boxes[{f}]: expected shape ({feat.shape[0]}, 4) to match roi_features[{f}], "
                f"got {tuple(box.shape)}"
            )

    n = len(trajs)
    features = np.zeros((n, channels), dtype=np.float32)
    span = np.zeros((n, 2), dtype=np.float32)
    traj_boxes = np.full((n, num_frames, 4), np.nan, dtype=np.float32)
    ends = np.append(times, duration)  # ends[f]: when frame f stops standing for the video
    for k, traj in enumerate(trajs):
        if not traj.frames or len(traj.frames) != len(traj.boxes) or (np.diff(traj.frames) <= 0).any():
            raise ValueError(
                f"trajs[{k}]: expected strictly increasing frames, one box each, at least one, "
                f"got frames {traj.frames} and boxes {traj.boxes}"
            )
        for f, i in zip(traj.frames, traj.boxes):
            if not (0 <= f < num_frames and 0 <= i < boxes[f].shape[0]):
                raise ValueError(f"trajs[{k}]: box {i} of frame {f} does not exist")
        feats = torch.stack([roi_features[f][i] for f, i in zip(traj.frames, traj.boxes)])  # [L, C]
        features[k] = feats.detach().double().mean(0).cpu().numpy()
        traj_boxes[k, list(traj.frames)] = (
            torch.stack([boxes[f][i] for f, i in zip(traj.frames, traj.boxes)]).detach().cpu().numpy()
        )
        span[k] = (times[traj.frames[0]] / duration, ends[traj.frames[-1] + 1] / duration)

    out = {
        "features": features,
        "labels": np.array([t.label for t in trajs], dtype=np.int64),
        "scores": np.array([t.score for t in trajs], dtype=np.float32),
        "span": span,
        "boxes": traj_boxes,
        "frame_times": times.astype(np.float32),
    }
    if class_names is not None:
        for k, t in enumerate(trajs):
            if not 0 <= t.label < len(class_names):
                raise ValueError(
                    f"trajs[{k}]: label {t.label} has no name "
                    f"(expected 0 <= label < {len(class_names)})"
                )
        out["label_names"] = np.array([class_names[t.label].encode() for t in trajs], dtype=np.bytes_)
    return out
