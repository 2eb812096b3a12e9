"""Which decoded frames each model pass needs, for a list of videos (DESIGN.md section 1).

An appearance step and a 1 fps trajectory frame on the same decoded frame share their ResNet
and detector passes in the pipeline's plan (``share=True``): the top ``num_objects``
detections are the first of the top ``trajectory_candidates``. The naive baseline's plan
(``share=False``) lists them separately, so each use runs its own passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extract.video import DecodedVideo


@dataclass(frozen=True)
class FramePlan:
    """The decoded frames that the stages need, for a list of videos.

    frames: (video, index into ``DecodedVideo.frames``) of every planned frame, videos first,
        then decode order. ResNet runs once on each, the detector once on each with ``top_k > 0``.
    times (ndarray[R] float64): seconds of each planned frame (its first grid time).
    top_k (ndarray[R] int64): detections each frame needs: ``num_objects`` for an appearance
        step, ``trajectory_candidates`` for a trajectory frame, the larger for both, 0 for none.
    step_rows, traj_rows (list[ndarray[T]], list[ndarray[F]]): per video, the row in ``frames``
        of each appearance step and of each trajectory frame.
    """

    frames: list[tuple[int, int]]
    times: np.ndarray
    top_k: np.ndarray
    step_rows: list[np.ndarray]
    traj_rows: list[np.ndarray]

    def detected_rows(self) -> list[int]:
        """Rows the detector runs on, in order."""
        return np.flatnonzero(self.top_k).tolist()


def plan_frames(
    videos: Sequence[DecodedVideo], *, steps: bool, num_objects: int, trajectory_candidates: int, share: bool = True
) -> FramePlan:
    """Frames of ``videos`` needed by the appearance steps (when ``steps``) and by the
    trajectory frames (when ``trajectory_candidates`` > 0); ``num_objects`` 0 = no step detections.

    ``share``: one row per distinct decoded frame (the pipeline); else one row per use, the
    steps then the trajectory frames of each video (the naive baseline).
    """
    empty = np.zeros(0, np.int64)
    frames: list[tuple[int, int]] = []
    times, top_k, step_rows, traj_rows = [np.zeros(0)], [empty], [], []
    for v, video in enumerate(videos):
        step_grid = video.steps if steps else empty
        traj_grid = video.trajectory_steps if trajectory_candidates else empty
        step_ids, traj_ids = video.grid[step_grid], video.grid[traj_grid]
        if share:
            ids = np.unique(np.concatenate([step_ids, traj_ids]))
            at_step, at_traj = np.searchsorted(ids, step_ids), np.searchsorted(ids, traj_ids)
        else:
            ids = np.concatenate([step_ids, traj_ids])
            at_step, at_traj = np.arange(len(step_ids)), len(step_ids) + np.arange(len(traj_ids))
        k = np.zeros(len(ids), np.int64)
        np.maximum.at(k, at_step, num_objects)
        np.maximum.at(k, at_traj, trajectory_candidates)
        first = np.full(len(ids), np.inf)  # the first grid time at which each row is used
        np.minimum.at(first, at_step, step_grid / video.sampling.fps)
        np.minimum.at(first, at_traj, traj_grid / video.sampling.fps)
        step_rows.append(len(frames) + at_step)
        traj_rows.append(len(frames) + at_traj)
        frames.extend((v, int(i)) for i in ids)
        top_k.append(k)
        times.append(first)
    return FramePlan(frames, np.concatenate(times), np.concatenate(top_k), step_rows, traj_rows)
