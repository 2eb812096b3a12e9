"""Fixture writers for the NExT-QA layout: ``{train,val,test}.csv`` annotations, the feature directory
``extract export nextqa`` writes (``vid_feat/app_mot_<split>.h5``, ``traj_feat/traj_<split>.h5``), and
NExT-QA's ``bert_ft_<split>.h5``, all with plain h5py and tiny widths."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"
CLIP_DIM, TRAJ_DIM = 8, 12  # stand-ins for 2048 (appearance, motion) and 2048 (trajectory features)
LABELS = ("adult", "child", "dog", "ball", "toy_car")
TYPES = ("CW", "CH", "TN", "TP", "TC", "DC", "DL", "DO")
WORDS = ("red", "blue", "green", "jump", "sit", "run", "cat", "hat", "sing", "cry", "walk", "eat")


def write_csv(path: Path, rows: list[tuple[str, int, int]], *, seed: int = 0) -> None:
    """One csv row per (video, qid, answer index); distinct option texts per question."""
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for n, (video, qid, answer) in enumerate(rows):
        options = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 5)))) + f" w{n}x{i}" for i in range(5)]
        qtype = TYPES[n % len(TYPES)]
        lines.append(f"{video},100,64,48,why does {WORDS[n % len(WORDS)]} {video} happen,{answer},{qid},{qtype},"
                     + ",".join(options))
    path.write_text("\n".join(lines) + "\n")


def write_annotations(root: Path, splits: dict[str, dict[str, int]], *, seed: int = 0) -> dict[str, list]:
    """``splits``: split -> {video: number of questions}; answers drawn at random. Returns the rows."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, (split, videos) in enumerate(splits.items()):
        rows = [(video, q, int(rng.integers(5))) for video, count in videos.items() for q in range(count)]
        write_csv(root / f"{split}.csv", rows, seed=seed + i)
        written[split] = rows
    return written


def write_export(feat_dir: Path, split: str, trajectories: dict[str, int], *, seed: int = 0,
                 with_trajectories: bool = True, clips: int = 16) -> dict[str, dict]:
    """Write ``app_mot_<split>.h5`` (and ``traj_<split>.h5``) for videos -> number of trajectories.

    N_max is the most trajectories of a video, at least 1 (a file where no video has one: N_max 1, all masked).
    Padded slots hold random values, so a model that read them would change its output.
    """
    rng = np.random.default_rng(seed)
    keys = list(trajectories)
    (feat_dir / "vid_feat").mkdir(parents=True, exist_ok=True)
    feat = rng.normal(size=(len(keys), clips, 2 * CLIP_DIM)).astype(np.float32)
    strings = h5py.string_dtype("utf-8")
    with h5py.File(feat_dir / "vid_feat" / f"app_mot_{split}.h5", "w") as h5:
        h5.create_dataset("ids", data=np.array(keys, dtype=object), dtype=strings)
        h5["feat"] = feat
    out = {key: {"feat": feat[i]} for i, key in enumerate(keys)}
    if not with_trajectories:
        return out
    n_max = max(1, max(trajectories.values(), default=0))
    N = len(keys)
    mask = np.zeros((N, n_max), dtype=bool)
    for i, key in enumerate(keys):
        mask[i, : trajectories[key]] = True
    labels = np.where(mask, rng.integers(len(LABELS), size=(N, n_max)), -1).astype(np.int64)
    names = np.array([[LABELS[l] if l >= 0 else "" for l in row] for row in labels], dtype=object)
    start = rng.uniform(0, 0.5, size=(N, n_max))
    span = np.stack([start, start + rng.uniform(0, 0.5, size=(N, n_max))], axis=-1).astype(np.float32)
    traj = rng.normal(size=(N, n_max, TRAJ_DIM)).astype(np.float32)
    (feat_dir / "traj_feat").mkdir(parents=True, exist_ok=True)
    with h5py.File(feat_dir / "traj_feat" / f"traj_{split}.h5", "w") as h5:
        h5.create_dataset("ids", data=np.array(keys, dtype=object), dtype=strings)
        h5["feat"] = traj
        h5["mask"] = mask
        h5["span"] = span
        h5["labels"] = labels
        h5.create_dataset("label_names", data=names, dtype=strings)
        h5["scores"] = rng.uniform(size=(N, n_max)).astype(np.float32)
    for i, key in enumerate(keys):
        out[key] |= {"traj": traj[i][mask[i]], "span": span[i][mask[i]], "names": list(names[i][mask[i]])}
    return out


def write_bert(directory: Path, split: str, questions: int, *, dim: int = 10, tokens: int = 37, seed: int = 0) -> np.ndarray:
    """``bert_ft_<split>.h5`` with ``feat`` ``[questions, 5, tokens, dim]``; each row's tokens beyond a random
    length are zero (BERT-FT padding)."""
    rng = np.random.default_rng(seed)
    feat = rng.normal(size=(questions, 5, tokens, dim)).astype(np.float32)
    lengths = rng.integers(3, tokens, size=(questions, 5))
    feat *= (np.arange(tokens)[None, None, :] < lengths[..., None])[..., None]
    directory.mkdir(parents=True, exist_ok=True)
    with h5py.File(directory / f"bert_ft_{split}.h5", "w") as h5:
        h5["feat"] = feat
    return feat
