"""The VideoQA model registry: a name -> how to build the model, what it reads, how its steps are sampled.

A model file ends with one decorated builder (torchvision's ``register_model`` habit)::

    @register_model("masn", config=ModelConfig, paper="Seo et al., ACL 2021")
    def build_masn(config: ModelConfig, **dims) -> MASN:
        return MASN(config, **dims)

and ``MODEL_MODULES`` below names the module, so that ``list_models()`` can import it lazily (``extract
--help`` stays instant). The trainer calls the builder with keyword arguments only:

    vocab_size, word_dim   word-embedding table (``set_word_vectors`` fills it)
    appearance_dim, motion_dim   widths of the appearance and motion features
    head                   ``count`` | ``choice`` | ``open``; num_answers for ``open``
    text_dim, trajectory_dim   ``nextqa``-source models only: BERT-FT width (0: GloVe tokens) and
                           trajectory feature width (0: the export has no trajectories)

The model keeps its head in ``head_kind``; its ``forward(batch)`` returns ``[B]`` (count), ``[B, C]`` (choice) or ``[B, A]`` (open).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

__all__ = ["ModelSpec", "MODEL_MODULES", "register_model", "get_model_spec", "list_models", "uniform_sample",
           "fixed_sample"]

# name -> module that registers it; one line per model.
MODEL_MODULES: dict[str, str] = {
    "masn": "extract.videoqa.models.masn",
    "hga": "extract.videoqa.models.hga",
    "trajectory_hg": "extract.videoqa.models.trajectory_hg",
    "mspan": "extract.videoqa.models.mspan",
    "fam": "extract.videoqa.models.fam",
}

Source = Literal["masn", "nextqa"]  # masn: OUT/masn index files; nextqa: `extract export nextqa` files


def uniform_sample(length: int, max_steps: int) -> np.ndarray:
    """Indices of at most ``max_steps`` steps spread evenly over ``length`` steps (int64, increasing).

    ``length <= max_steps``: every step (the batch pads and masks the rest). Otherwise step ``i`` of
    ``max_steps`` is the centre of the i-th of ``max_steps`` equal segments: ``floor((i + 0.5) * length / max_steps)``.
    """
    if length < 0 or max_steps < 1:
        raise ValueError(f"expected length >= 0 and max_steps >= 1, got length={length}, max_steps={max_steps}")
    if length <= max_steps:
        return np.arange(length, dtype=np.int64)
    return ((np.arange(max_steps) + 0.5) * length / max_steps).astype(np.int64)


def fixed_sample(length: int, steps: int) -> np.ndarray:
    """Exactly ``steps`` indices for a video of ``length >= 1`` steps: segment centres when ``length >= steps``
    (as ``uniform_sample``), else every step repeated in order, ``floor(i * length / steps)``, so a 5-step
    video fills 16 slots as 0,0,0,0,1,1,1,2,... (the repeat-pad of MSPAN's and HCRN's ``average_sample``)."""
    if length < 1 or steps < 1:
        raise ValueError(f"expected length >= 1 and steps >= 1, got length={length}, steps={steps}")
    if length >= steps:
        return uniform_sample(length, steps)
    return (np.arange(steps) * length // steps).astype(np.int64)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model."""

    name: str
    builder: Callable[..., object]  # builder(config, *, vocab_size, word_dim, appearance_dim, motion_dim, head, num_answers)
    config: type[BaseModel]  # the model's settings; defaults are the paper's
    paper: str  # citation shown by `extract train --help`
    source: Source = "masn"  # which feature files it reads
    sample: Callable[[int, int], np.ndarray] = uniform_sample  # (video steps, max steps) -> indices
    max_steps: Callable[[str], int] | None = None  # dataset -> steps per video; None: the trainer's default
    heads: tuple[str, ...] = ("count", "choice", "open")  # heads it supports


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, config: type[BaseModel], paper: str, source: Source = "masn",
                   sample: Callable[[int, int], np.ndarray] = uniform_sample,
                   max_steps: Callable[[str], int] | None = None,
                   heads: tuple[str, ...] = ("count", "choice", "open")) -> Callable:
    """Decorator registering ``builder`` under ``name`` (which must be listed in ``MODEL_MODULES``)."""

    def wrap(builder: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, config, paper, source, sample, max_steps, heads)
        return builder

    return wrap


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a registered model; ValueError naming the registered ones otherwise."""
    if name not in MODEL_MODULES:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODEL_MODULES))}")
    importlib.import_module(MODEL_MODULES[name])
    return _REGISTRY[name]


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(MODEL_MODULES)
