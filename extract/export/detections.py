"""A run's own detector output, written in the ``--detections`` JSON format.

For each done video with the objects stage: its appearance-step detections (the shards'
``detections/K/{boxes,scores,labels,num_boxes}``, boxes in the video file's pixels) at the step
times ``t * stride / fps``. Feeding the directory back with ``--detections`` reproduces the
objects features of those steps (the trajectory frames' candidates are not stored, so
trajectories on re-import see only the step detections that fall within the tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extract.detections import FrameDetections, write_detections_json
from extract.export._run import done_with, read_arrays, run_config
from extract.store import OutputDir

__all__ = ["export_run_detections"]

_ARRAYS = ("detections/boxes", "detections/scores", "detections/labels", "detections/num_boxes",
           "detections/label_names")


def export_run_detections(out: Path, dest: Path, *, label_names: Sequence[str] | None = None) -> dict[str, Path]:
    """Write ``dest/<key>.json`` for every done video of run ``out`` that has the objects stage.

    label_names: the vocabulary the run's labels index (e.g. the detector's
        ``extract.models.detector.category_names()``); a shard's own ``detections/K/label_names``
        takes precedence. Without either, labels are written as raw ints.

    Returns: key -> path written.
    """
    config = run_config(out)
    stride, fps = config["sampling"]["stride"], config["sampling"]["fps"]
    out_dir = OutputDir(out)
    done = done_with(out_dir, ("objects",))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, arrays in read_arrays(out_dir, done, sorted(done), _ARRAYS):
        counts = arrays["detections/num_boxes"]  # [T]
        frames = [FrameDetections(arrays["detections/boxes"][t, :k], arrays["detections/scores"][t, :k],
                                  arrays["detections/labels"][t, :k]) for t, k in enumerate(counts.tolist())]
        names = arrays.get("detections/label_names")
        vocabulary = [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else label_names
        times = np.arange(len(counts)) * stride / fps
        written[key] = write_detections_json(dest / f"{key}.json", times.tolist(), frames, vocabulary)
    return written
