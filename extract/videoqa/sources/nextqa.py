"""The NExT-QA feature layout written by ``extract export nextqa`` (and NExT-QA's BERT-FT text features).

Under the export directory ``FEAT``::

    vid_feat/app_mot_<split>.h5   ids  (N,) variable-length UTF-8 video keys
                                  feat (N, 16, 4096) float32: [..., :2048] appearance, [..., 2048:] motion
    traj_feat/traj_<split>.h5     ids (N,); feat (N, N_max, 2048) float32 mean region feature;
                                  mask (N, N_max) bool (True = real trajectory); span (N, N_max, 2) float32
                                  normalised [start, end]; labels (N, N_max) int64 (-1 padding);
                                  label_names (N, N_max) strings ("" padding); scores (N, N_max) float32

``<split>`` is train / val / test, or ``all`` for datasets without splits. Every file present is read
and its ids merged, so a question of any split finds its video in ``app_mot_<split>.h5`` or
``app_mot_all.h5``; a key in two files is an error. Without any ``traj_*.h5`` the batches carry no
trajectories; with them, a video absent from them has no features (its questions are left out).

BERT-FT (NExT-QA's release): ``bert_ft_<split>.h5``, dataset ``feat`` of shape (questions, 5, 37, 768),
indexed by the question's 0-based row in ``<split>.csv`` (``Question.row``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from extract.videoqa.data import Batch, Example, FeatureDims, collate
from extract.videoqa.registry import uniform_sample
from extract.videoqa.vocab import WordVocab

__all__ = ["CLIPS", "NextqaFeatureReader", "BertFeatures", "NextqaDataset", "collate_nextqa", "label_name_tokens"]

CLIPS = 16  # clips per video in app_mot files (NExT-QA's release: 16 segments)
SPLIT_NAMES = ("train", "val", "test", "all")


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _index(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """key -> (file position, row) over every file's ``ids``; ValueError on a key in two files."""
    import h5py

    where: dict[str, tuple[int, int]] = {}
    for f, path in enumerate(paths):
        with h5py.File(path, "r") as h5:
            if "ids" not in h5 or "feat" not in h5:
                raise ValueError(f"{path}: expected datasets 'ids' and 'feat', found {sorted(h5)}")
            for row, key in enumerate(_strings(h5["ids"][()])):
                if key in where:
                    raise ValueError(f"video {key!r} is in both {paths[where[key][0]]} and {path}")
                where[key] = (f, row)
    return where


class NextqaFeatureReader:
    """Lazy reader of one video's clips (and trajectories) from an ``extract export nextqa`` directory.

    Same interface as ``data.FeatureReader`` (``has``, ``length``, ``dims``, ``read``, ``close``); h5py
    handles open on first use in each process (DataLoader workers never share them).
    """

    def __init__(self, feat_dir: Path):
        feat_dir = Path(feat_dir)
        self.feat_dir = feat_dir
        self.frame_files = [feat_dir / "vid_feat" / f"app_mot_{s}.h5" for s in SPLIT_NAMES
                            if (feat_dir / "vid_feat" / f"app_mot_{s}.h5").is_file()]
        if not self.frame_files:
            raise FileNotFoundError(f"{feat_dir}: no vid_feat/app_mot_<split>.h5 (train, val, test or all); "
                                    "write them with `extract export nextqa`")
        self.traj_files = [feat_dir / "traj_feat" / f"traj_{s}.h5" for s in SPLIT_NAMES
                           if (feat_dir / "traj_feat" / f"traj_{s}.h5").is_file()]
        self._frames = _index(self.frame_files)
        self._trajs = _index(self.traj_files)
        self._handles: tuple[list, list] | None = None
        self._pid = -1
        first = self.frame_files[0]
        import h5py

        with h5py.File(first, "r") as h5:
            shape = h5["feat"].shape
        if len(shape) != 3 or shape[-1] % 2:
            raise ValueError(f"{first}: feat must be (N, clips, appearance + motion), got {shape}")
        self._width = shape[-1]

    @property
    def has_trajectories(self) -> bool:
        return bool(self.traj_files)

    def __getstate__(self):
        return {**self.__dict__, "_handles": None, "_pid": -1}

    def _open(self) -> tuple[list, list]:
        if self._handles is None or self._pid != os.getpid():
            import h5py

            self._handles = ([h5py.File(p, "r") for p in self.frame_files], [h5py.File(p, "r") for p in self.traj_files])
            self._pid = os.getpid()
        return self._handles

    def close(self) -> None:
        if self._handles is not None and self._pid == os.getpid():
            for handle in (*self._handles[0], *self._handles[1]):
                handle.close()
        self._handles = None

    def has(self, key: str) -> bool:
        """Whether ``key`` has clips (and, when trajectory files exist, an entry in them)."""
        return key in self._frames and (not self.traj_files or key in self._trajs)

    def length(self, key: str) -> int:
        f, row = self._frames[key]
        return int(self._open()[0][f]["feat"].shape[1])

    def dims(self, key: str) -> FeatureDims:
        """Appearance and motion widths (half of ``feat`` each); ``objects`` is the trajectory feature width (0: none)."""
        half = self._width // 2
        if not self.traj_files:
            return FeatureDims(half, half, 0)
        return FeatureDims(half, half, int(self._open()[1][0]["feat"].shape[-1]))

    def read(self, key: str, steps: np.ndarray) -> dict[str, np.ndarray]:
        """``app_global [T, D_a]``, ``mot_global [T, D_m]`` at ``steps``."""
        f, row = self._frames[key]
        clips = np.asarray(self._open()[0][f]["feat"][row], dtype=np.float32)[steps]  # [T, D_a + D_m]
        half = clips.shape[-1] // 2
        return {"app_global": clips[:, :half], "mot_global": clips[:, half:]}

    def trajectories(self, key: str) -> dict | None:
        """The real trajectories of ``key``: ``feat [N_t, D_t]``, ``span [N_t, 2]``, ``names`` (N_t label
        names); N_t may be 0. None without trajectory files."""
        if not self.traj_files:
            return None
        f, row = self._trajs[key]
        h5 = self._open()[1][f]
        mask = np.asarray(h5["mask"][row], dtype=bool)  # [N_max]
        names = _strings(h5["label_names"][row])
        return {"feat": np.asarray(h5["feat"][row], dtype=np.float32)[mask],
                "span": np.asarray(h5["span"][row], dtype=np.float32)[mask],
                "names": [name for name, real in zip(names, mask) if real]}

    def label_names(self, keys: Sequence[str]) -> list[str]:
        """Label names of every real trajectory of ``keys`` (for the word vocabulary)."""
        names = []
        for key in keys:
            found = self.trajectories(key) if key in self._trajs else None
            names.extend(found["names"] if found else [])
        return names


class BertFeatures:
    """NExT-QA's BERT-FT features: ``bert_ft_<split>.h5`` under ``directory``, ``feat[row, candidate]`` ``[37, 768]``."""

    def __init__(self, directory: Path, splits: Sequence[str]):
        self.directory = Path(directory)
        self.paths = {split: self.directory / f"bert_ft_{split}.h5" for split in splits}
        missing = [str(p) for p in self.paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"BERT-FT feature files not found: {', '.join(missing)}")
        self._handles: dict | None = None
        self._pid = -1

    def __getstate__(self):
        return {**self.__dict__, "_handles": None, "_pid": -1}

    def _open(self) -> dict:
        if self._handles is None or self._pid != os.getpid():
            import h5py

            self._handles = {split: h5py.File(p, "r") for split, p in self.paths.items()}
            self._pid = os.getpid()
            for split, h5 in self._handles.items():
                if "feat" not in h5 or h5["feat"].ndim != 4:
                    raise ValueError(f"{self.paths[split]}: expected dataset 'feat' (questions, 5, tokens, dim)")
        return self._handles

    @property
    def dim(self) -> int:
        return int(next(iter(self._open().values()))["feat"].shape[-1])

    def check_rows(self, split: str, rows: Sequence[int]) -> None:
        """ValueError naming the file when a csv row lies beyond its ``feat``."""
        count = self._open()[split]["feat"].shape[0]
        beyond = [r for r in rows if r >= count]
        if beyond:
            raise ValueError(f"{self.paths[split]}: has {count} questions, but csv row {beyond[0]} is asked for "
                             "(features of another split or release?)")

    def read(self, split: str, row: int, candidate: int) -> np.ndarray:
        """``[tokens, dim]`` float32; trailing all-zero rows are padding."""
        return np.asarray(self._open()[split]["feat"][row, candidate], dtype=np.float32)

    def close(self) -> None:
        if self._handles is not None and self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = None


def label_name_tokens(names: Sequence[str], words: WordVocab) -> list[tuple[int, ...]]:
    """Word indices of each label name (``"adult man"`` -> two words); unknown words map to UNK."""
    return [tuple(words.encode(name.replace("_", " "))) for name in names]


class NextqaDataset(Dataset):
    """Examples with their clips, trajectories and (optionally) BERT-FT rows, read when requested."""

    def __init__(self, examples: Sequence[Example], reader: NextqaFeatureReader, *, words: WordVocab, max_steps: int,
                 sample: Callable[[int, int], np.ndarray] = uniform_sample, bert: BertFeatures | None = None):
        self.examples = list(examples)
        self.reader = reader
        self.words = words
        self.max_steps = max_steps
        self.sample = sample
        self.bert = bert

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[Example, np.ndarray, dict[str, np.ndarray], dict]:
        example = self.examples[i]
        steps = self.sample(self.reader.length(example.key), self.max_steps)
        extras: dict = {}
        trajectories = self.reader.trajectories(example.key)
        if trajectories is not None:
            extras["traj"] = (trajectories["feat"], trajectories["span"],
                              label_name_tokens(trajectories["names"], self.words))
        if self.bert is not None:
            if example.text_rows is None:
                raise ValueError(f"question {example.index} of video {example.key} has no csv row for BERT-FT features")
            extras["text"] = np.stack([self.bert.read(*row) for row in example.text_rows])  # [C, 37, 768]
        return example, steps, self.reader.read(example.key, steps), extras


def _text_lengths(text: np.ndarray) -> np.ndarray:
    """Tokens up to the last non-zero row of each candidate, at least 1: ``[C, L, D]`` -> ``[C]``."""
    nonzero = np.any(text != 0, axis=-1)  # [C, L]
    last = np.where(nonzero.any(axis=1), nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 1)
    return last.astype(np.int64)


def collate_nextqa(items: Sequence[tuple[Example, np.ndarray, dict[str, np.ndarray], dict]]) -> Batch:
    """``data.collate`` plus trajectories padded to the most in the batch (at least one slot, masked when
    a video has none) and BERT-FT rows padded to the longest."""
    batch = collate([item[:3] for item in items])
    B = len(items)
    extra: dict[str, torch.Tensor] = {}
    if "traj" in items[0][3]:
        dim = items[0][3]["traj"][0].shape[-1]
        n = max(1, max(len(item[3]["traj"][0]) for item in items))
        w = max([1] + [len(row) for item in items for row in item[3]["traj"][2]])
        extra = {"traj_feat": torch.zeros(B, n, dim), "traj_mask": torch.zeros(B, n, dtype=torch.bool),
                 "traj_span": torch.zeros(B, n, 2), "traj_label_tokens": torch.zeros(B, n, w, dtype=torch.long),
                 "traj_label_lengths": torch.zeros(B, n, dtype=torch.long)}
        for b, item in enumerate(items):
            feat, span, names = item[3]["traj"]
            k = len(feat)
            extra["traj_feat"][b, :k] = torch.from_numpy(feat)
            extra["traj_span"][b, :k] = torch.from_numpy(span)
            extra["traj_mask"][b, :k] = True
            for j, row in enumerate(names):
                extra["traj_label_tokens"][b, j, : len(row)] = torch.tensor(row, dtype=torch.long)
                extra["traj_label_lengths"][b, j] = len(row)
    if "text" in items[0][3]:
        texts = [item[3]["text"] for item in items]  # [C, 37, D] each
        lengths = torch.from_numpy(np.stack([_text_lengths(t) for t in texts]))  # [B, C]
        L = int(lengths.max())
        feat = torch.zeros(B, *texts[0].shape[:1], L, texts[0].shape[-1])
        for b, text in enumerate(texts):
            feat[b] = torch.from_numpy(text[:, :L])
        feat = feat * (torch.arange(L)[None, None, :] < lengths[..., None])[..., None]
        extra |= {"text_feat": feat, "lengths": lengths}
    return replace(batch, **extra)
