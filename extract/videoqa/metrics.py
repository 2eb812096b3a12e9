"""VideoQA metrics as the benchmarks report them, and the predictions file they are computed from.

- TGIF-QA (Jang et al., CVPR 2017; MASN Table 1): Count mean squared error, Action / Trans. /
  FrameQA accuracy.
- MSVD-QA, MSRVTT-QA (Xu et al., ACM MM 2017; MASN Table 2): accuracy per question word
  (what, who, how, when, where) and overall.
- NExT-QA multiple choice (Xiao et al., CVPR 2021; the authors' ``eval_mc.py``): accuracy for CW, CH
  (causal), TN (TP counted as TN), TC (temporal), DC, DL, DO (descriptive), for C, T, D, and overall.

Accuracies are percentages; Count is an MSE. A predictions file is JSON keyed ``<video>_<qid>``
with ``prediction``, ``answer`` and ``task`` per question (NExT-QA's authors use the same keys).
This module imports nothing heavy, so evaluating a predictions file is instant.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from extract.atomic import atomic_write
from extract.names import NEXTQA_FORMAT, TGIF_FORMAT

__all__ = [
    "NEXTQA_GROUPS",
    "TGIF_TASK_NAMES",
    "QUESTION_WORDS",
    "summarize",
    "selection_metric",
    "nextqa_accuracy",
    "evaluate_nextqa",
    "evaluate_predictions",
    "format_table",
    "write_predictions",
    "read_predictions",
]

NEXTQA_GROUPS = ("CW", "CH", "TN", "TC", "DC", "DL", "DO")  # NExT-QA question types as reported (TP -> TN)
TGIF_TASK_NAMES = {"count": "Count", "action": "Action", "transition": "Trans", "frameqa": "FrameQA"}
QUESTION_WORDS = ("what", "who", "how", "when", "where")  # MSVD-QA / MSRVTT-QA question types


def _percent(correct: int, total: int) -> float | None:
    return 100.0 * correct / total if total else None


def _accuracy(records: list[Mapping]) -> float | None:
    return _percent(sum(r["prediction"] == r["answer"] for r in records), len(records))


def _mse(records: list[Mapping]) -> float | None:
    if not records:
        return None
    return sum((float(r["prediction"]) - float(r["answer"])) ** 2 for r in records) / len(records)


def nextqa_accuracy(pairs: Iterable[tuple[str, bool]]) -> dict[str, float | None]:
    """Accuracy (%) per NExT-QA group, per C/T/D and ``All`` from (type, correct) pairs; None for empty groups."""
    correct = dict.fromkeys((*NEXTQA_GROUPS, "C", "T", "D", "All"), 0)
    total = dict(correct)
    for qtype, right in pairs:
        group = "TN" if qtype == "TP" else qtype
        if group not in NEXTQA_GROUPS:
            raise ValueError(f"unknown NExT-QA question type {qtype!r}; expected one of {NEXTQA_GROUPS + ('TP',)}")
        for name in (group, group[0], "All"):
            correct[name] += bool(right)
            total[name] += 1
    return {name: _percent(correct[name], total[name]) for name in correct}


def summarize(records: Iterable[Mapping], dataset: str) -> dict[str, float | None]:
    """Benchmark metrics of prediction records (dicts with ``task``, ``prediction``, ``answer``)."""
    records = list(records)
    if dataset in NEXTQA_FORMAT:
        return nextqa_accuracy((str(r["task"]), r["prediction"] == r["answer"]) for r in records)
    by_task: dict[str, list[Mapping]] = {}
    for r in records:
        by_task.setdefault(str(r["task"]).lower(), []).append(r)
    if dataset in TGIF_FORMAT:
        unknown = sorted(set(by_task) - set(TGIF_TASK_NAMES))
        if unknown:
            raise ValueError(f"unknown TGIF-QA tasks {unknown}; expected {sorted(TGIF_TASK_NAMES)}")
        return {
            name: (_mse if task == "count" else _accuracy)(by_task[task])
            for task, name in TGIF_TASK_NAMES.items()
            if task in by_task
        }
    if dataset in ("msvd", "msrvtt"):
        words = [*QUESTION_WORDS, *sorted(set(by_task) - set(QUESTION_WORDS))]
        return {**{word: _accuracy(by_task.get(word, [])) for word in words}, "All": _accuracy(records)}
    raise ValueError(f"unknown dataset {dataset!r}")


def selection_metric(records: Iterable[Mapping], head: str) -> tuple[str, float]:
    """The model-selection number of a validation pass, higher is better: (name, value).

    ``("accuracy", %)`` for choice and open-ended heads, ``("neg_mse", -MSE)`` for Count.
    """
    records = list(records)
    if not records:
        raise ValueError("no validation predictions to select a model on")
    if head == "count":
        return "neg_mse", -_mse(records)
    return "accuracy", _accuracy(records)


def write_predictions(records: Iterable[Mapping], path: Path) -> Path:
    """Write records as JSON keyed ``<video>_<qid>`` (atomic); raises ValueError on a repeated key.

    A qid that already starts with ``<video>_`` (the NExT-QA adapter's ``<video>_<csv qid>``) is the key
    as it is, so the file matches the annotations' ``<video>_<qid>`` that ``evaluate_nextqa`` looks up.
    """
    out: dict[str, dict] = {}
    for r in records:
        qid = str(r["qid"])
        key = qid if qid.startswith(f"{r['video']}_") else f"{r['video']}_{qid}"
        if key in out:
            raise ValueError(f"two questions share the prediction key {key!r} (video {r['video']!r}, qid {r['qid']!r})")
        out[key] = {"prediction": r["prediction"], "answer": r["answer"], "task": r["task"]}
    return atomic_write(path, json.dumps(out, indent=1, sort_keys=True))


def read_predictions(path: Path) -> dict[str, dict]:
    """A predictions file as written by ``write_predictions`` (or by the NExT-QA authors' code)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "prediction" in v for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object mapping '<video>_<qid>' to "
                         "{'prediction': ..., 'answer': ...}")
    return data


def evaluate_predictions(predictions: Path, dataset: str) -> dict[str, float | None]:
    """Metrics of a predictions file written by ``extract.videoqa`` (each entry carries its ``task``)."""
    entries = read_predictions(predictions)
    untyped = [key for key, entry in entries.items() if "task" not in entry or "answer" not in entry]
    if untyped:
        raise ValueError(f"{predictions}: {len(untyped)} entries lack 'task' or 'answer' (e.g. {untyped[0]!r}); "
                         "for NExT-QA predictions from other code use evaluate_nextqa with the annotations csv")
    return summarize(entries.values(), dataset)


def evaluate_nextqa(predictions: Path, annotations: Path) -> dict[str, float | None]:
    """NExT-QA multiple-choice accuracy (%), as the authors' ``eval_mc.py`` computes it.

    predictions: JSON keyed ``<video>_<qid>`` with ``prediction`` (candidate index) and optionally
        ``answer``; annotations: the split's csv (``video, frame_count, width, height, question,
        answer, qid, type, a0..a4``), which gives each question's type and right answer.
    Returns ``{CW, CH, TN, TC, DC, DL, DO, C, T, D, All}``; TP questions count as TN; a group without
    questions is None. Raises ValueError when a question has no prediction or when a prediction's
    ``answer`` contradicts the annotations (predictions made for another split).
    """
    entries = read_predictions(predictions)
    with open(annotations, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    needed = {"video", "qid", "type", "answer"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{annotations}: missing columns {sorted(needed - set(rows[0]))}")
    pairs, missing = [], []
    for row in rows:
        key = f"{row['video']}_{row['qid']}"
        entry = entries.get(key)
        if entry is None:
            missing.append(key)
            continue
        answer = int(row["answer"])
        if "answer" in entry and int(entry["answer"]) != answer:
            raise ValueError(f"{predictions}: {key} has answer {entry['answer']!r} but {annotations} says {answer}")
        pairs.append((row["type"], int(entry["prediction"]) == answer))
    if missing:
        raise ValueError(f"{predictions}: no prediction for {len(missing)} of {len(rows)} questions "
                         f"of {annotations} (e.g. {', '.join(missing[:3])})")
    return nextqa_accuracy(pairs)


def format_table(metrics: Mapping[str, float | None], *, title: str | None = None) -> str:
    """A two-row pipe table of ``metrics`` with two decimals, as in published tables (None -> ``-``)."""
    names = list(metrics)
    values = ["-" if metrics[n] is None else f"{metrics[n]:.2f}" for n in names]
    widths = [max(len(n), len(v)) for n, v in zip(names, values)]
    lines = [
        "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        "| " + " | ".join(v.rjust(w) for v, w in zip(values, widths)) + " |",
    ]
    return "\n".join(([title] if title else []) + lines)
