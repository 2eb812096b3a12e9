"""Which decoded frames each model pass needs, for a list of videos (DESIGN.md section 1).

An appearance step and a 1 fps trajectory frame on the same decoded frame share their ResNet
and detector passes in the pipeline's plan (``share=True``): the top ``num_objects``
detections are the first of the top ``trajectory_candidates``. The naive baseline's plan
(``share=False``) lists them separately, so each use runs its own passes.

The pipeline's plan also says how the frames go into model batches: by windows of a video's
steps (``sampling.step_batches`` of the whole video: full batches, then powers of two). A
window's ResNet batch is its distinct frames (its steps' and the trajectory frames in its grid
span), its I3D batch its steps' clips; frames are shared within a window only. The batches
then depend on the video alone, whichever videos share the call and however the video is cut
into parts (a part is whole windows), so its features are the same bits in every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extract.sampling import appearance_steps, step_batches
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
    batches (list[range]): rows of each ResNet batch (consecutive rows of one window).
    clip_batches (list[range]): clips (steps of the call, videos in order) of each I3D batch.
    """

    frames: list[tuple[int, int]]
    times: np.ndarray
    top_k: np.ndarray
    step_rows: list[np.ndarray]
    traj_rows: list[np.ndarray]
    batches: list[range]
    clip_batches: list[range]

    def detected_rows(self) -> list[int]:
        """Rows the detector runs on, in order."""
        return np.flatnonzero(self.top_k).tolist()


def windows(video: DecodedVideo, batch: int | None) -> list[range]:
    """The model-batch windows of ``video`` (a whole video or a part), as ranges of its steps.

    ``batch``: steps per full batch (``sampling.step_batches`` of the whole video's steps,
    kept where they fall in this part); None = one window of all its steps.
    """
    n = len(video.steps)
    if batch is None or n == 0:
        return [range(0, n)]
    offset = int(np.searchsorted(appearance_steps(video.num_grid, video.sampling.stride), video.steps[0]))
    return [
        range(max(w.start - offset, 0), min(w.stop - offset, n))
        for w in step_batches(offset + n, batch)
        if w.stop > offset
    ]


def plan_frames(
    videos: Sequence[DecodedVideo],
    *,
    steps: bool,
    num_objects: int,
    trajectory_candidates: int,
    share: bool = True,
    batch: int | None = None,
) -> FramePlan:
    """Frames of ``videos`` needed by the appearance steps (when ``steps``) and by the
    trajectory frames (when ``trajectory_candidates`` > 0); ``num_objects`` 0 = no step detections.

    ``share``: one row per distinct decoded frame of a window (the pipeline); else one row per
    use, the steps then the trajectory frames of each video (the naive baseline).
    ``batch``: the windows' full size (see ``windows``); None = one window per video.
    """
    empty = np.zeros(0, np.int64)
    frames: list[tuple[int, int]] = []
    times, top_k, step_rows, traj_rows = [np.zeros(0)], [empty], [], []
    batches, clip_batches, clips = [], [], 0
    for v, video in enumerate(videos):
        v_steps, v_traj = [], []
        for w in windows(video, batch):
            start = video.steps[w.start] if len(w) else 0
            stop = video.steps[w.stop] if w.stop < len(video.steps) else video.num_grid
            step_grid = video.steps[w.start : w.stop] if steps else empty
            traj = video.trajectory_steps if trajectory_candidates else empty
            traj_grid = traj[(traj >= start) & (traj < stop)] if batch is not None else traj
            rows, at_step, at_traj = _rows(video, step_grid, traj_grid, num_objects, trajectory_candidates, share, len(frames))
            batches.append(range(len(frames), len(frames) + len(rows[0])))
            clip_batches.append(range(clips + w.start, clips + w.stop))
            frames.extend((v, int(i)) for i in rows[0])
            top_k.append(rows[1])
            times.append(rows[2])
            v_steps.append(at_step)
            v_traj.append(at_traj)
        clips += len(video.steps)
        step_rows.append(np.concatenate(v_steps))
        traj_rows.append(np.concatenate(v_traj))
    return FramePlan(frames, np.concatenate(times), np.concatenate(top_k), step_rows, traj_rows, batches, clip_batches)


def _rows(video, step_grid, traj_grid, num_objects, trajectory_candidates, share, first_row):
    """One window's rows: (decoded indices, top_k, first times) and the rows of its steps and trajectory frames."""
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
    return (ids, k, first), first_row + at_step, first_row + at_traj
