"""``extract export nextqa``: a run's features in the layout of NExT-QA's own code.

NExT-QA (Xiao et al., CVPR 2021; github.com/doc-doc/NExT-QA, ``dataloader/sample_loader.py``) and
the models built on it (HGA, HQGA, the trajectory paper) read, relative to their feature root:

    vid_feat/app_mot_<split>.h5
        ids   (N,) variable-length UTF-8 strings: the video keys
        feat  (N, 16, D_a + D_m) float32: 16 clip slots per video, ``feat[..., :D_a]`` the
              appearance (ResNet avgpool) and ``feat[..., D_a:]`` the motion (I3D avgpool)
              global features; 2048 + 2048 = 4096 with the paper and tiny presets
    traj_feat/traj_<split>.h5   (only for runs with the trajectories stage)
        ids          (N,) strings
        feat         (N, N_max, C) float32: mean RoI feature of each trajectory, zero padded
        mask         (N, N_max) bool: True for a real trajectory
        span         (N, N_max, 2) float32: [start, end] normalised by the video duration
        labels       (N, N_max) int64, -1 padding
        label_names  (N, N_max) strings, "" padding
        scores       (N, N_max) float32, 0 padding
        N_max = max(1, the most trajectories of one video)

The 16 slots come from our 6 fps appearance steps by :func:`extract.sampling.slot_steps`.
Splits: for NExT-QA-format datasets (``nextqa``, ``demo-mc``) one file per split of the
annotations (the videos its questions are about); for any other dataset one ``_all`` file of
every done video. Only done videos are written; a split's videos without features are reported,
never invented. Every file carries attributes naming the run (``source_out``, ``config``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extract.atomic import atomic_path
from extract.export._run import done_with, read_arrays, run_config
from extract.names import NEXTQA_FORMAT
from extract.sampling import slot_steps
from extract.store import TRAJECTORIES, OutputDir

__all__ = ["NEXTQA_FORMAT", "SLOTS", "ExportReport", "export_nextqa", "video_splits"]


SLOTS = 16  # clip slots per video in NExT-QA's feature files
SLOT_RULE = "slot i = step floor((i+0.5)*T/16) if T >= 16 else floor(i*T/16)"
_TRAJ = ("features", "span", "labels", "label_names", "scores")


@dataclass
class ExportReport:
    """Files written and lines for the user (missing videos per split)."""

    written: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def video_splits(config: dict, data_root: Path | None = None) -> dict[str, list[str] | None]:
    """Video keys per split file to write, from the run's dataset and annotations.

    NExT-QA-format datasets: ``{split: sorted keys of that split's questions}`` for each split
    with questions; any other dataset: ``{"all": None}``, meaning every done video.
    """
    dataset = config["dataset"]
    if dataset not in NEXTQA_FORMAT:
        return {"all": None}
    from extract.datasets import load_dataset

    root = Path(data_root or config.get("data_root") or "")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: the {dataset} annotations of this run are not there; give --data-root")
    questions = load_dataset(dataset, root).questions()
    splits: dict[str, set[str]] = {}
    for q in questions:
        splits.setdefault(q.split, set()).add(q.key)
    return {split: sorted(keys) for split, keys in splits.items()}


def export_nextqa(out: Path, dest: Path | None = None, *, data_root: Path | None = None) -> ExportReport:
    """Write ``dest/vid_feat/app_mot_<split>.h5`` (and ``traj_feat/traj_<split>.h5``) from run ``out``.

    dest: the NExT-QA feature root (default ``OUT/nextqa``).
    data_root: the annotations, when they are no longer where run.json says.
    """
    out_dir = OutputDir(out)
    config = run_config(out)
    dest = Path(dest) if dest is not None else Path(out) / "nextqa"
    missing_stages = {"appearance", "motion"} - set(config["stages"])
    if missing_stages:
        raise ValueError(f"{out}: app_mot needs the appearance and motion stages; this run has {config['stages']}")
    done = done_with(out_dir, ("appearance", "motion"))
    with_traj = TRAJECTORIES in config["stages"]
    attrs = {"source_out": str(Path(out).absolute()), "config": json.dumps(config), "dataset": config["dataset"],
             "slot_rule": SLOT_RULE}
    report = ExportReport()
    for split, wanted in video_splits(config, data_root).items():
        keys = sorted(done) if wanted is None else [k for k in wanted if k in done]
        absent = [k for k in wanted or () if k not in done]
        if absent:
            report.lines.append(f"{split}: {len(absent)} of {len(wanted)} videos have no features (not exported): "
                                f"{', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
        if not keys:
            report.lines.append(f"{split}: no video with features; app_mot_{split}.h5 not written")
            continue
        report.written.append(_write_app_mot(out_dir, done, keys, dest / "vid_feat" / f"app_mot_{split}.h5",
                                             {**attrs, "split": split}))
        if with_traj:
            traj_keys = [k for k in keys if TRAJECTORIES in done[k].get("stages", ())]
            if len(traj_keys) < len(keys):
                report.lines.append(f"{split}: {len(keys) - len(traj_keys)} videos have no trajectories (not exported)")
            if traj_keys:
                report.written.append(_write_traj(out_dir, done, traj_keys, dest / "traj_feat" / f"traj_{split}.h5",
                                                  {**attrs, "split": split}))
        report.lines.append(f"{split}: {len(keys)} videos -> {dest}")
    return report


def _write_app_mot(out: OutputDir, done: dict, keys: list[str], path: Path, attrs: dict) -> Path:
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.create_dataset("ids", data=keys, dtype=h5py.string_dtype("utf-8"))
        feat = None
        for n, (key, arrays) in enumerate(read_arrays(out, done, keys, ("appearance", "motion"))):
            app, mot = arrays["appearance"], arrays["motion"]  # [T, D_a], [T, D_m]
            if feat is None:
                feat = f.create_dataset("feat", (len(keys), SLOTS, app.shape[1] + mot.shape[1]), dtype=np.float32)
                f.attrs.update({"appearance_dim": app.shape[1], "motion_dim": mot.shape[1]})
            slots = slot_steps(len(app), SLOTS)
            feat[n] = np.concatenate([app[slots], mot[slots]], axis=1)  # [16, D_a + D_m]
    return path


def _write_traj(out: OutputDir, done: dict, keys: list[str], path: Path, attrs: dict) -> Path:
    import h5py

    # Two passes, one video in memory at a time: the labels give N_max, then each row is filled.
    counts = [len(a[f"{TRAJECTORIES}/labels"]) for _, a in read_arrays(out, done, keys, [f"{TRAJECTORIES}/labels"])]
    n, n_max = len(keys), max(1, *counts)
    text = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.create_dataset("ids", data=keys, dtype=text)
        f.create_dataset("mask", data=np.arange(n_max)[None, :] < np.array(counts)[:, None])  # [N, N_max]
        span = f.create_dataset("span", (n, n_max, 2), dtype=np.float32, fillvalue=0)
        labels = f.create_dataset("labels", (n, n_max), dtype=np.int64, fillvalue=-1)
        scores = f.create_dataset("scores", (n, n_max), dtype=np.float32, fillvalue=0)
        names = np.full((n, n_max), "", dtype=object)
        feat = None
        for v, (key, arrays) in enumerate(read_arrays(out, done, keys, [f"{TRAJECTORIES}/{a}" for a in _TRAJ])):
            arrays = {name.split("/", 1)[1]: value for name, value in arrays.items()}
            count = counts[v]
            if feat is None:
                feat = f.create_dataset("feat", (n, n_max, arrays["features"].shape[1]), dtype=np.float32, fillvalue=0)
            if count:
                feat[v, :count], span[v, :count] = arrays["features"], arrays["span"]
                labels[v, :count], scores[v, :count] = arrays["labels"], arrays["scores"]
            if "label_names" in arrays:
                names[v, :count] = [x.decode() if isinstance(x, bytes) else str(x) for x in arrays["label_names"]]
        f.create_dataset("label_names", data=names, dtype=text)
    return path
