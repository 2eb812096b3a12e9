"""TGIF-QA annotations.

Jang et al., "TGIF-QA: Toward Spatio-Temporal Reasoning in Visual Question Answering", CVPR 2017.
The release ships tab-separated ``{Train,Test,Total}_{count,action,transition,frameqa}_question.csv``
files (CRLF line ends, one row per line; a field with quotes in it is quoted, its quotes
doubled, never across lines) and the GIFs themselves as
``gifs/<gif_name>.gif``. Column order differs per task; columns are read by name:

- count:              gif_name, question, answer, vid_id, key
- action, transition: gif_name, question, a1..a5, answer, vid_id, key   (answer = index 0..4 of a1..a5)
- frameqa:            gif_name, question, answer, type, vid_id, key, description
                      (type 0 object, 1 number, 2 color, 3 location)

Mapping onto ``Question``:

- ``key`` is the ``key`` column as written; one GIF serves many questions, so videos are
  deduplicated by key, and one key naming two different GIFs is an error.
- ``split`` is ``train`` / ``test`` for the Train_ / Test_ files. ``Total_`` files repeat
  Train + Test, so a task's Total file is read only when that task has neither; its
  questions then get split ``total``.
- ``qid`` is ``<task>_<split>_<row>`` with ``row`` the 0-based data row of the file.
- ``candidates`` are (a1..a5) for action and transition, ``answer`` the index string;
  count answers are the number as written; frameqa answers are the word.
- ``meta`` holds ``vid_id`` (the release's own question id) and, for frameqa,
  ``frameqa_type`` (object / number / color / location) and ``description``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from .base import AnnotationError, Question, VideoRecord, check_key, read_table, resolve_inside

TASKS = ("count", "action", "transition", "frameqa")
_CHOICES = ("a1", "a2", "a3", "a4", "a5")
COLUMNS = {
    "count": ("gif_name", "question", "answer", "vid_id", "key"),
    "action": ("gif_name", "question", *_CHOICES, "answer", "vid_id", "key"),
    "transition": ("gif_name", "question", *_CHOICES, "answer", "vid_id", "key"),
    "frameqa": ("gif_name", "question", "answer", "type", "vid_id", "key", "description"),
}
FRAMEQA_TYPES = {"0": "object", "1": "number", "2": "color", "3": "location"}
_FILE_SPLITS = {"Train": "train", "Test": "test"}


def question_file(root: Path, prefix: str, task: str) -> Path:
    """``root/<prefix>_<task>_question.csv`` with prefix Train, Test or Total."""
    return root / f"{prefix}_{task}_question.csv"


def annotation_files(root: Path) -> list[tuple[Path, str, str]]:
    """The question files to read as ``(path, task, split)``, Total files only as a fallback."""
    found = []
    for task in TASKS:
        per_task = [(question_file(root, prefix, task), task, split) for prefix, split in _FILE_SPLITS.items()]
        per_task = [entry for entry in per_task if entry[0].is_file()]
        total = question_file(root, "Total", task)
        if not per_task and total.is_file():
            per_task = [(total, task, "total")]
        found.extend(per_task)
    return found


def load(root: Path, *, videos_dir: Path | None = None) -> tuple[list[VideoRecord], list[Question]]:
    """Read every TGIF-QA question file under ``root``; GIFs are looked up in ``videos_dir``
    (default ``root/gifs``). Returns videos sorted by key and questions in file order."""
    gifs = videos_dir if videos_dir is not None else root / "gifs"
    files = annotation_files(root)
    if not files:
        raise AnnotationError(
            f"{root}: no TGIF-QA question files; expected tab-separated "
            "{Train,Test,Total}_{count,action,transition,frameqa}_question.csv, e.g. Test_count_question.csv")
    videos: dict[str, tuple[VideoRecord, str]] = {}  # key -> (record, where it was first seen)
    questions = []
    for path, task, split in files:
        for row_index, (line, row) in enumerate(read_table(path, delimiter="\t", required=COLUMNS[task], one_line_rows=True)):
            where = f"{path}: line {line}"
            key = check_key(row["key"], source=where)
            gif_name = row["gif_name"]
            if key in videos:
                known, first = videos[key]
                if known.meta["gif_name"] != gif_name:
                    raise AnnotationError(f"{where}: key {key!r} names GIF {gif_name!r}, but {first} "
                                          f"names {known.meta['gif_name']!r} for the same key")
            else:
                video_path = resolve_inside(gifs, f"{gif_name}.gif", source=where)
                videos[key] = (VideoRecord(key, video_path, {"gif_name": gif_name}), where)
            questions.append(_question(row, task=task, split=split, qid=f"{task}_{split}_{row_index}", where=where))
    return [videos[key][0] for key in sorted(videos)], questions


def _question(row: dict[str, str], *, task: str, split: str, qid: str, where: str) -> Question:
    answer = row["answer"]
    meta = {"vid_id": row["vid_id"]}
    candidates: tuple[str, ...] = ()
    if task in ("action", "transition"):
        candidates = tuple(row[name] for name in _CHOICES)
        if answer not in {str(i) for i in range(len(candidates))}:
            raise AnnotationError(f"{where}: {task} answer {answer!r} must be the index 0..4 of a1..a5")
    elif task == "count":
        if not answer.isdigit():
            raise AnnotationError(f"{where}: count answer {answer!r} must be a non-negative integer")
    else:
        if row["type"] not in FRAMEQA_TYPES:
            raise AnnotationError(f"{where}: frameqa type {row['type']!r} must be one of 0, 1, 2, 3 "
                                  "(object, number, color, location)")
        meta.update(frameqa_type=FRAMEQA_TYPES[row["type"]], description=row["description"])
    return Question(key=row["key"], qid=qid, question=row["question"], answer=answer, task=task,
                    split=split, candidates=candidates, meta=meta)


def write_tgif_questions(path: Path, task: str, rows: Iterable[Mapping[str, object]]) -> None:
    """Write one TGIF-QA question file as the release does: tab-separated, CRLF, the task's
    column order (``COLUMNS[task]``). Every row must give exactly those columns."""
    if task not in COLUMNS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    columns = COLUMNS[task]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(columns)
        for row in rows:
            if set(row) != set(columns):
                raise ValueError(f"{task} row must have columns {', '.join(columns)}, got {', '.join(row)}")
            writer.writerow([row[name] for name in columns])
