"""Which MASN head a dataset/task trains, which questions it uses, and the per-dataset defaults
(Seo et al., ACL 2021, sections 3.4 and 4.2; public code defaults where the paper is silent)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from extract.datasets.base import Question
from extract.names import NEXTQA_FORMAT, TGIF_FORMAT, TGIF_TASKS
from extract.videoqa.data import FeatureReader, Head

__all__ = [
    "TGIF_HEADS",
    "head_for",
    "select_questions",
    "with_features",
    "default_max_steps",
    "default_answer_top_k",
    "default_batch_size",
    "load_splits",
]

# The answer head of each TGIF-QA task (its names: extract.names.TGIF_TASKS).
TGIF_HEADS: dict[str, Head] = {"count": "count", "action": "choice", "transition": "choice", "frameqa": "open"}


def head_for(dataset: str, task: str | None) -> Head:
    """The answer head: TGIF Count regression, Action/Transition and NExT-QA multiple choice, FrameQA and
    MSVD/MSRVTT open-ended classification (demo-mc: NExT-QA's format). TGIF-format datasets need a task, the others take none."""
    if dataset in TGIF_FORMAT:
        if task not in TGIF_TASKS:
            raise ValueError(f"dataset {dataset!r} trains one task at a time: pass task as one of "
                             f"{list(TGIF_TASKS)}, got {task!r}")
        return TGIF_HEADS[task]
    if task is not None:
        raise ValueError(f"dataset {dataset!r} trains on all its questions; task must be None, got {task!r}")
    if dataset in ("msvd", "msrvtt"):
        return "open"
    if dataset in NEXTQA_FORMAT:
        return "choice"
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {[*TGIF_FORMAT, 'msvd', 'msrvtt', *NEXTQA_FORMAT]}")


def select_questions(questions: Sequence[Question], dataset: str, task: str | None) -> list[Question]:
    """The questions a (dataset, task) model answers: one TGIF task, or everything."""
    if dataset in TGIF_FORMAT:
        return [q for q in questions if q.task.lower() == task]
    return list(questions)


def with_features(questions: Sequence[Question], reader: FeatureReader) -> tuple[list[Question], list[str]]:
    """Questions whose video has features in all four files (and at least one step); the missing keys."""
    present: dict[str, bool] = {}
    for key in {q.key for q in questions}:
        present[key] = reader.has(key) and reader.length(key) > 0
    return [q for q in questions if present[q.key]], sorted(k for k, ok in present.items() if not ok)


def default_max_steps(dataset: str) -> int:
    """Video steps kept per video (uniformly sampled): 20 for TGIF-format, 30 otherwise (public code)."""
    return 20 if dataset in TGIF_FORMAT else 30


def default_answer_top_k(dataset: str) -> int | None:
    """Open-ended answer classes: MSVD-QA 1000, MSRVTT-QA 4000, every training answer otherwise."""
    return {"msvd": 1000, "msrvtt": 4000}.get(dataset)


def default_batch_size(head: Head) -> int:
    """Paper (section 4.2): 16 for Action and Trans. (multiple choice), 32 for Count and FrameQA."""
    return 16 if head == "choice" else 32


def load_splits(dataset: str, data_root: Path) -> dict[str, list[Question]]:
    """Questions per split (``train``, and ``val`` and ``test`` where the dataset has them) through
    ``extract.datasets.load_dataset``. Raises ValueError when there are no training questions."""
    from extract.datasets import load_dataset

    source = load_dataset(dataset, data_root)
    splits = {name: source.questions(name) for name in ("train", "val", "test")}
    if not splits["train"]:
        raise ValueError(f"the {dataset} annotations under {data_root} have no training questions")
    return {name: questions for name, questions in splits.items() if questions}
