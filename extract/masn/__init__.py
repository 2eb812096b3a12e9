"""The bundled MASN trainer and VideoQA evaluation.

MASN: "Attend What You Need: Motion-Appearance Synergistic Networks for Video Question Answering",
Seo, Kang, Park and Zhang, ACL 2021. The trainer reads features in the original MASN layout
(``layout.MASN_INDEX_FILES``), so it runs on what ``extract run`` writes to ``OUT/masn``.

Public entry points (imported lazily: ``import extract.masn`` does not import torch):
    train(TrainConfig, splits=None) -> Path             train.py
    evaluate(checkpoint, questions, feat_dir=, out=)     evaluate.py
    evaluate_checkpoint(checkpoint, data_root=, feat_dir=, split=)
    evaluate_nextqa(predictions, annotations) -> dict     metrics.py
    evaluate_predictions(predictions, dataset) -> dict
    format_table(metrics) -> str
"""

from __future__ import annotations

from importlib import import_module

__all__ = [
    "MASN_INDEX_FILES",
    "ModelConfig",
    "TrainConfig",
    "train",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_nextqa",
    "evaluate_predictions",
    "format_table",
    "load_checkpoint",
]

_WHERE = {
    "MASN_INDEX_FILES": "layout",
    "ModelConfig": "model",
    "TrainConfig": "train",
    "train": "train",
    "evaluate": "evaluate",
    "evaluate_checkpoint": "evaluate",
    "load_checkpoint": "evaluate",
    "evaluate_nextqa": "metrics",
    "evaluate_predictions": "metrics",
    "format_table": "metrics",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
