"""``TrainConfig``: everything a VideoQA training run depends on, validated and resolved.

Saved in the checkpoint and in run.json; ``extract.videoqa.train.train`` runs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from extract.names import DATASETS, PROGRESS_MODES, TGIF_TASKS
from extract.videoqa.augment import AugmentConfig
from extract.videoqa.registry import get_model_spec
from extract.videoqa.tasks import head_for

__all__ = ["TrainConfig"]


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vqa-extract" / "glove"


class TrainConfig(BaseModel):
    """Everything a training run depends on; saved in the checkpoint and in run.json."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal[DATASETS]  # picks index files, head and metrics (demo-mc: NExT-QA's format)
    task: Literal[TGIF_TASKS] | None = None  # TGIF-format task; None for the others
    feat_dir: Path  # masn-source models: the four index files (OUT/masn of `extract run`); nextqa-source
    #                 models (hga, trajectory_hg): the directory `extract export nextqa` wrote
    out_dir: Path  # where checkpoint.pt, metrics.jsonl, metrics.png, predictions_*.json and run.json go
    data_root: Path | None = None  # annotation root for load_dataset; unused when `train` is given the splits
    glove: Path | None = None  # GloVe text file (e.g. glove.840B.300d.txt); required unless random_embeddings
    random_embeddings: bool = False  # smoke tests only: random word vectors instead of GloVe, noted in run.json
    glove_cache_dir: Path = Field(default_factory=_default_cache_dir)  # GloVe matrix cache (~/.cache/vqa-extract/glove)
    word_dim: int = Field(300, ge=1)  # width of random word vectors (a GloVe file brings its own width)
    epochs: int = Field(50, ge=1)  # upper bound on epochs (public code: 100)
    patience: int | None = Field(10, ge=1)  # stop after this many epochs without validation gain; None: never
    batch_size: int | None = Field(None, ge=1)  # None: the model config's BATCH_SIZE, else MASN's 16 for
    #                                             multiple choice and 32 otherwise
    lr: float | None = Field(None, gt=0)  # Adam learning rate; None: the model config's LR for its text
    #                                     features, else 1e-4 (MASN paper)
    bert_dir: Path | None = None  # directory of NExT-QA's bert_ft_<split>.h5 (nextqa-source models); None: GloVe
    augment: AugmentConfig = Field(default_factory=AugmentConfig)  # sample augmentation of training
    #                                   multiple-choice questions (a-, qa-; none by default)
    weight_decay: float = Field(0.0, ge=0)  # Adam weight decay (public code: 0)
    val_fraction: float = Field(0.1, gt=0, lt=1)  # training videos held out when there is no val split (code: 0.1)
    max_video_steps: int | None = Field(None, ge=1)  # steps sampled per video; None: 20 TGIF-format, 30 others
    max_question_tokens: int | None = Field(None, ge=1)  # tokens of a question (+ candidate); None: the model
    #                         config's MAX_TOKENS (hga, trajectory_hg: 37, section 4.2), else 20 (MASN code)
    answer_top_k: int | None = Field(None, ge=1)  # open-ended classes; None: MSVD 1000, MSRVTT 4000, else all
    seed: int = 0  # seeds initialisation, shuffling and random word vectors
    num_workers: int = Field(2, ge=0)  # DataLoader worker processes; 0 reads features in the main process
    device: str = "auto"  # "auto": CUDA when available, else CPU; or a torch device string ("cuda:1")
    progress: Literal[PROGRESS_MODES] = "auto"  # auto: rich bar on a terminal, log lines otherwise
    overwrite: bool = False  # replace the outputs of an earlier run in out_dir instead of refusing
    arch: str = "masn"  # registered model name (extract.videoqa.registry.list_models())
    model: Any = Field(default_factory=dict)  # the model's own config (its
    #                                   registered config class; a dict is validated into it)

    @model_validator(mode="after")
    def _model_config(self) -> TrainConfig:
        spec = get_model_spec(self.arch)
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", spec.config.model_validate(self.model))
        elif not isinstance(self.model, spec.config):
            raise ValueError(f"model must be a {spec.config.__name__} for arch {self.arch!r}, "
                             f"got {type(self.model).__name__}")
        if self.max_question_tokens is None:  # resolved here, so checkpoints and run.json hold the number
            object.__setattr__(self, "max_question_tokens", getattr(self.model, "MAX_TOKENS", 20))
        head = head_for(self.dataset, self.task)
        if head not in spec.heads:
            raise ValueError(f"model {self.arch!r} has no {head} head (it supports {', '.join(spec.heads)})")
        if self.augment.strategies and head != "choice":
            raise ValueError(f"sample augmentation adds negative candidates: it needs a multiple-choice head, "
                             f"not {head}")
        return self
