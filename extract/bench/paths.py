"""The bench's two paths over the same videos, and how far their features are apart.

Both run the same pass functions (``extract.features``); only the schedule differs:

- **optimized**: the local executor as ``extract run`` uses it, timed through its explicit
  ``timer`` hook;
- **naive**: one video at a time, decoded whole, then its frames through each model as one
  batch (``extract.features.NAIVE``: no padding, no sharing of frames between the steps and
  the trajectory frames, one thread, float32 NCHW), no overlap, one HDF5 file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extract import layout
from extract.bench.measure import Peak, PathResult


def run_naive(naive, records, config, h5_path: Path, timer, device) -> PathResult:
    """The naive path: ``naive`` is a ``FeatureExtractor`` with the ``NAIVE`` schedule and ``timer``."""
    import h5py

    from extract.video import decode
    from extract.worker import extract_group

    done = 0
    with Peak(device) as peak:
        start = time.perf_counter()
        with h5py.File(h5_path, "w") as f:
            for record in records:
                with timer("decode"):
                    try:  # whole videos, as public scripts decode them
                        video = decode(record.path, config.sampling, config.decode)
                    except Exception:  # noqa: BLE001 - a failed video costs both paths the same
                        continue
                (result,) = extract_group(naive, [record], [video])
                if not result.ok:
                    continue
                with timer("write"):
                    for name, array in result.features.items():
                        f.create_dataset(layout.shard_path(name, record.key), data=array)
                done += 1
        wall = time.perf_counter() - start
    return PathResult(wall, done, timer, peak, 0, naive.computed, naive.needed)


def run_optimized(config, extractor, records, out_dir: Path, timer, device) -> PathResult:
    """The optimized path: the local executor; ``extractor`` was built with the same ``timer``."""
    from extract.executors.local import execute_local
    from extract.store import OutputDir, ShardSink

    sink = ShardSink(OutputDir(out_dir), {"config": config.model_dump_json(), "bench": "optimized"})
    done = [0]

    def on_result(result) -> None:
        done[0] += result.ok

    with Peak(device) as peak:
        start = time.perf_counter()
        execute_local(config, records, extractor, sink, on_result, timer=timer)
        wall = time.perf_counter() - start
    return PathResult(wall, done[0], timer, peak, 0, extractor.computed, extractor.needed)


def compare(naive_h5: Path, out_dir: Path, keys: Sequence[str]) -> dict:
    """How far the optimized features are from the naive ones.

    Object features are compared on the steps whose boxes are identical in both paths (both
    in the file's pixels), and trajectory features on the videos whose trajectory boxes are:
    with random weights every box scores alike, and the thread count can decide the order of ties.
    """
    import h5py

    from extract.store import OutputDir

    manifest = OutputDir(out_dir).done()
    worst: dict[str, float] = {}
    same_steps = steps = same_videos = videos = 0

    def update(name: str, a: np.ndarray, b: np.ndarray) -> None:
        if a.shape != b.shape:
            worst[name] = math.inf
        elif a.size:
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(a - b) / (1e-4 + 1e-4 * np.abs(a)))))

    with h5py.File(naive_h5, "r") as naive:
        for key in keys:
            if key not in manifest:
                continue
            with h5py.File(out_dir / "shards" / manifest[key]["shard"], "r") as opt:
                def pair(spec: layout.ArraySpec):
                    path = spec.path(key)
                    return (naive[path][()], opt[path][()]) if path in naive and path in opt else (None, None)

                for spec in (layout.APPEARANCE, layout.MOTION):
                    a, b = pair(spec)
                    if a is not None:
                        update(spec.name, a, b)
                boxes_a, boxes_b = pair(layout.DETECTION_BOXES)
                if boxes_a is not None and boxes_a.shape == boxes_b.shape:
                    same = np.all(boxes_a == boxes_b, axis=(1, 2))
                    same_steps, steps = same_steps + int(same.sum()), steps + len(same)
                    for spec in (layout.IMAGE_FEATURES, layout.MOTION_OBJECTS):
                        a, b = pair(spec)
                        if a is not None:
                            update(spec.name, a[same], b[same])
                traj_a, traj_b = pair(layout.TRAJECTORY_BOXES)
                if traj_a is not None:
                    videos += 1
                    if traj_a.shape == traj_b.shape and np.array_equal(traj_a, traj_b, equal_nan=True):
                        same_videos += 1
                        update(layout.TRAJECTORY_FEATURES.name, *pair(layout.TRAJECTORY_FEATURES))
    return {
        "worst": worst,  # max |optimized - naive| / (1e-4 + 1e-4 |naive|): <= 1 agrees at atol = rtol = 1e-4
        "steps_with_identical_boxes": same_steps,
        "steps": steps,
        "videos_with_identical_trajectories": same_videos,
        "videos_with_trajectories": videos,
    }
