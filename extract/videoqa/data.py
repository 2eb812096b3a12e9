"""Examples and batches for the MASN trainer (Seo et al., ACL 2021, sections 3.1 and 4.2).

Features are read lazily, one video per item, from the four index files of the original MASN
layout (``layout.MASN_INDEX_FILES``); each DataLoader worker opens its own read-only h5py handles.
A video longer than ``max_steps`` is sampled uniformly over its whole length (the public MASN code
truncates it to its first steps); shorter videos are padded and masked per batch.

Questions become examples here: token indices (question, or question + candidate for multiple
choice, one row per candidate) and a target (count value, right candidate index, or answer class
with ``NO_CLASS`` for answers outside the training answers).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from extract.datasets.base import Question
from extract.masn_index import MasnIndexFiles
from extract.videoqa.registry import uniform_sample
from extract.videoqa.vocab import AnswerVocab, WordVocab

__all__ = [
    "Head",
    "Example",
    "TextRow",
    "Batch",
    "FeatureDims",
    "FeatureReader",
    "MasnDataset",
    "uniform_sample",
    "carve_validation",
    "feature_statistics",
    "build_examples",
    "make_loader",
]

Head = Literal["count", "choice", "open"]


def carve_validation(train: Sequence[Question], fraction: float) -> tuple[list[Question], list[Question]]:
    """Split ``train`` into (train, validation) by video: a video goes to validation when the hash of
    its key falls in the lowest ``fraction`` of the hash range. Deterministic, and no video is in both.
    With too few videos for the fraction to select any, the lowest-hash video is taken (if there are
    at least two videos).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")

    def position(key: str) -> float:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64

    keys = sorted({q.key for q in train}, key=position)
    held_out = {key for key in keys if position(key) < fraction}
    if not held_out and len(keys) >= 2:
        held_out = {keys[0]}
    return [q for q in train if q.key not in held_out], [q for q in train if q.key in held_out]


@dataclass(frozen=True)
class Example:
    """One question ready for the model."""

    index: int  # position in the question list it came from
    key: str  # video key
    tokens: tuple[tuple[int, ...], ...]  # [C][L_c] word indices; C = 1 unless multiple choice
    target: float  # count value, right candidate index, or answer class (NO_CLASS if none)
    text_rows: tuple[TextRow, ...] | None = None  # [C] where each candidate's BERT features are; None: tokens only


class TextRow(NamedTuple):
    """Where one candidate's precomputed text features are: NExT-QA's ``bert_ft_<split>.h5``, ``feat[row, candidate]``."""

    split: str  # train | val | test
    row: int  # 0-based data row of the question in its split's csv
    candidate: int  # 0..4


def _choice_tokens(question: list[int], candidate: list[int], max_tokens: int) -> tuple[int, ...]:
    """Question + candidate, at most ``max_tokens``: the question is cut first, the candidate last."""
    candidate = candidate[:max_tokens]
    return tuple(question[: max_tokens - len(candidate)] + candidate)


def build_examples(
    questions: Sequence[Question],
    *,
    head: Head,
    words: WordVocab,
    answers: AnswerVocab | None,
    max_tokens: int,
    text_rows: bool = False,
) -> list[Example]:
    """Encode ``questions`` for a model with the given head. Empty token rows become ``[UNK]``.

    text_rows: also record where each candidate's precomputed text features are (``Question.row``).
    """
    examples = []
    for index, q in enumerate(questions):
        question = words.encode(q.question)
        if head == "choice":
            if not q.candidates:
                raise ValueError(f"question {q.key}_{q.qid} has no candidates but the head is multiple choice")
            rows = tuple(_choice_tokens(question, words.encode(c), max_tokens) for c in q.candidates)
            target = float(int(q.answer))
            if not 0 <= target < len(q.candidates):
                raise ValueError(f"question {q.key}_{q.qid}: answer index {q.answer!r} outside its "
                                 f"{len(q.candidates)} candidates")
        else:
            rows = (tuple(question[:max_tokens]),)
            if head == "count":
                target = float(q.answer)
            else:
                assert answers is not None, "an open-ended head needs an answer vocabulary"
                target = float(answers.index(q.answer))
        where = None
        if text_rows:
            if q.row is None:
                raise ValueError(f"question {q.qid} has no annotation row: its text features cannot be found")
            where = tuple(TextRow(q.split, q.row, c) for c in range(len(rows)))
        examples.append(Example(index, q.key, tuple(row or (1,) for row in rows), target, where))
    counts = {len(e.tokens) for e in examples}
    if len(counts) > 1:
        raise ValueError(f"multiple-choice questions must all have the same number of candidates, got {sorted(counts)}")
    return examples


class FeatureDims(NamedTuple):
    appearance: int  # D_a, ResNet feature width (2048 for ResNet-152)
    motion: int  # D_m, I3D feature width (2048 for I3D-ResNet-50)
    objects: int  # N, objects per step (10 in the paper)


class FeatureReader:
    """Lazy reader of one video's features from the four MASN index files.

    Handles are opened read-only on first use in each process (so DataLoader workers never share
    them) and follow HDF5 external links.
    """

    def __init__(self, files: MasnIndexFiles):
        missing = [str(p) for p in files if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"MASN feature index files not found: {', '.join(missing)}")
        self.files = files
        self._handles = None
        self._pid = -1

    def __getstate__(self):
        return {"files": self.files, "_handles": None, "_pid": -1}

    def _open(self):
        if self._handles is None or self._pid != os.getpid():
            import h5py

            self._handles = MasnIndexFiles(*(h5py.File(p, "r") for p in self.files))
            self._pid = os.getpid()
        return self._handles

    def close(self) -> None:
        if self._handles is not None and self._pid == os.getpid():
            for handle in self._handles:
                handle.close()
        self._handles = None

    def has(self, key: str) -> bool:
        """Whether all four files hold video ``key``."""
        h = self._open()
        return (key in h.appearance_global and key in h.motion_global and key in h.motion_objects
                and key in h.appearance_objects["image_features"] and key in h.appearance_objects["spatial_features"])

    def length(self, key: str) -> int:
        """Steps T common to the four files (the shortest, should they disagree)."""
        h = self._open()
        return min(h.appearance_global[key].shape[0], h.motion_global[key].shape[0],
                   h.appearance_objects["image_features"][key].shape[0], h.motion_objects[key].shape[0])

    def dims(self, key: str) -> FeatureDims:
        """Feature widths read from video ``key``; raises ValueError when the files disagree."""
        h = self._open()
        app_global = h.appearance_global[key].shape
        mot_global = h.motion_global[key].shape
        app_objects = h.appearance_objects["image_features"][key].shape
        boxes = h.appearance_objects["spatial_features"][key].shape
        mot_objects = h.motion_objects[key].shape
        if app_objects[-1] != app_global[-1] or mot_objects[-1] != mot_global[-1]:
            raise ValueError(f"video {key}: object and global feature widths differ: appearance "
                             f"{app_objects} vs {app_global}, motion {mot_objects} vs {mot_global}")
        if not (app_objects[1] == mot_objects[1] == boxes[1]) or boxes[-1] != 6:
            raise ValueError(f"video {key}: expected (T, N, D) objects and (T, N, 6) boxes on the same N, got "
                             f"appearance {app_objects}, motion {mot_objects}, spatial {boxes}")
        return FeatureDims(int(app_global[-1]), int(mot_global[-1]), int(app_objects[1]))

    def read(self, key: str, steps: np.ndarray) -> dict[str, np.ndarray]:
        """Features of ``key`` at the given non-decreasing step indices (repeats allowed, as ``fixed_sample``
        gives short videos), as float32 arrays."""
        h = self._open()
        unique, inverse = np.unique(steps, return_inverse=True)  # h5py reads strictly increasing indices only
        return {
            "app_global": h.appearance_global[key][unique][inverse],  # [T, D_a]
            "mot_global": h.motion_global[key][unique][inverse],  # [T, D_m]
            "app_objects": h.appearance_objects["image_features"][key][unique][inverse],  # [T, N, D_a]
            "boxes": h.appearance_objects["spatial_features"][key][unique][inverse],  # [T, N, 6]
            "mot_objects": h.motion_objects[key][unique][inverse],  # [T, N, D_m]
        }


def feature_statistics(reader: FeatureReader, keys: Sequence[str], *,
                       min_std: float = 1e-6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel mean and standard deviation (float32 ``[D]`` each) of ``app_global``, ``mot_global``,
    ``app_objects`` and ``mot_objects`` over every step of the videos ``keys`` (the training videos).

    Object rows that are all zero (the padding of a step with fewer than N detections) are left out;
    a standard deviation below ``min_std`` becomes ``min_std``.
    """
    names = ("app_global", "mot_global", "app_objects", "mot_objects")
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    counts = dict.fromkeys(names, 0)
    for key in keys:
        features = reader.read(key, np.arange(reader.length(key)))
        for name in names:
            rows = np.asarray(features[name], dtype=np.float64).reshape(-1, features[name].shape[-1])  # [R, D]
            if name.endswith("objects"):
                rows = rows[np.any(rows != 0, axis=1)]
            sums[name] = sums.get(name, 0.0) + rows.sum(axis=0)
            squares[name] = squares.get(name, 0.0) + (rows**2).sum(axis=0)
            counts[name] += len(rows)
    empty = [name for name in names if counts[name] == 0]
    if empty:
        raise ValueError(f"no feature rows to compute statistics of {empty} from {len(keys)} videos")
    stats = {}
    for name in names:
        mean = sums[name] / counts[name]
        std = np.sqrt(np.maximum(squares[name] / counts[name] - mean**2, 0.0))
        stats[name] = (mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32))
    return stats


@dataclass
class Batch:
    """A padded batch; B questions, T steps (longest in the batch), N objects, C candidates, L tokens."""

    app_global: torch.Tensor  # [B, T, D_a]
    mot_global: torch.Tensor  # [B, T, D_m]
    steps: torch.Tensor  # [B, T] float, index of each sampled step in the original video
    video_mask: torch.Tensor  # [B, T] bool, True on real steps
    tokens: torch.Tensor  # [B, C, L] long, 0 = padding
    lengths: torch.Tensor  # [B, C] long, >= 1
    targets: torch.Tensor  # [B] float: count value, right candidate, or answer class (-1 = none)
    index: torch.Tensor  # [B] long, position of each question in its list
    # MASN files (source "masn"); None from the NExT-QA export
    app_objects: torch.Tensor | None = None  # [B, T, N, D_a]
    mot_objects: torch.Tensor | None = None  # [B, T, N, D_m]
    boxes: torch.Tensor | None = None  # [B, T, N, 6]
    # trajectories of the NExT-QA export (source "nextqa"); N_t = most trajectories in the batch, >= 1
    traj_feat: torch.Tensor | None = None  # [B, N_t, D_t] mean region feature of each trajectory
    traj_mask: torch.Tensor | None = None  # [B, N_t] bool, True on real trajectories (all False: none)
    traj_span: torch.Tensor | None = None  # [B, N_t, 2] normalised [start, end]
    traj_label_tokens: torch.Tensor | None = None  # [B, N_t, W] long word indices of the label name, 0 = padding
    traj_label_lengths: torch.Tensor | None = None  # [B, N_t] long, words of each label name (0 on padding)
    # precomputed text features (NExT-QA's BERT-FT) replacing the word embedding of ``tokens``
    text_feat: torch.Tensor | None = None  # [B, C, L, D_w] float, zero rows beyond ``lengths``

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device, non_blocking=True)
                        for f in fields(self)})

    def __len__(self) -> int:
        return self.targets.shape[0]


class MasnDataset(Dataset):
    """Examples paired with their video features, read when an item is requested."""

    def __init__(self, examples: Sequence[Example], reader: FeatureReader, *, max_steps: int,
                 sample: Callable[[int, int], np.ndarray] = uniform_sample):
        self.examples = list(examples)
        self.reader = reader
        self.max_steps = max_steps
        self.sample = sample  # (video steps, max_steps) -> step indices; the model's rule (registry)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[Example, np.ndarray, dict[str, np.ndarray]]:
        example = self.examples[i]
        steps = self.sample(self.reader.length(example.key), self.max_steps)
        return example, steps, self.reader.read(example.key, steps)


def collate(items: Sequence[tuple[Example, np.ndarray, dict[str, np.ndarray]]]) -> Batch:
    """Pad videos to the longest in the batch and token rows to the longest row."""
    B = len(items)
    T = max(max(len(steps) for _, steps, _ in items), 1)
    C = len(items[0][0].tokens)
    L = max(len(row) for example, _, _ in items for row in example.tokens)
    first = items[0][2]
    video = {name: torch.zeros((B, T, *array.shape[1:]), dtype=torch.float32) for name, array in first.items()}
    steps = torch.zeros(B, T)
    mask = torch.zeros(B, T, dtype=torch.bool)
    tokens = torch.zeros(B, C, L, dtype=torch.long)
    lengths = torch.zeros(B, C, dtype=torch.long)
    for b, (example, sampled, features) in enumerate(items):
        t = len(sampled)
        for name, array in features.items():
            video[name][b, :t] = torch.from_numpy(np.asarray(array, dtype=np.float32))
        steps[b, :t] = torch.from_numpy(sampled.astype(np.float32))
        mask[b, :t] = True
        for c, row in enumerate(example.tokens):
            tokens[b, c, : len(row)] = torch.tensor(row)
            lengths[b, c] = len(row)
    return Batch(
        **video,
        steps=steps,
        video_mask=mask,
        tokens=tokens,
        lengths=lengths,
        targets=torch.tensor([example.target for example, _, _ in items], dtype=torch.float32),
        index=torch.tensor([example.index for example, _, _ in items], dtype=torch.long),
    )


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                collate_fn: Callable = collate, persistent: bool = True) -> DataLoader:
    """A DataLoader over ``dataset``; the last batch may be smaller (even a single question).

    collate_fn: ``collate`` for MASN items, ``sources.nextqa.collate_nextqa`` for the NExT-QA export's.
    persistent: keep worker processes between epochs (not for a loader used once).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=generator,
        persistent_workers=persistent and num_workers > 0,
        drop_last=False,
        worker_init_fn=_ignore_ctrl_c,
    )


def _ignore_ctrl_c(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    # A terminal's Ctrl-C reaches the whole process group: the main process stops the workers
    # itself, and a worker interrupted mid-callback would print a stray traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
