"""NExT-QA multiple-choice annotations.

Xiao et al., "NExT-QA: Next Phase of Question-Answering to Explaining Temporal Actions", CVPR 2021.
The release ships comma-separated ``{train,val,test}.csv`` with the columns
``video, frame_count, width, height, question, answer, qid, type, a0..a4`` (answer = index of the
right option) and ``map_vid_vidorID.json`` mapping each video id to ``<folder>/<vidor id>``.

- key: the ``video`` column as written.
- video file: ``<videos>/<folder>/<vidor id>.mp4`` through the map when ``root/map_vid_vidorID.json``
  exists, else ``<videos>/<video>.mp4``; ``<videos>`` = ``root/videos`` unless given.
- qid: ``<video>_<qid>``. The ``qid`` column only numbers the questions of one video, and the
  benchmark's accuracy is keyed ``<video>_<qid>`` (DESIGN.md section 7).
- task: the ``type`` column: CW, CH (causal), TN, TP, TC (temporal), DC, DL, DO (descriptive).
- meta of each video: ``frame_count``, ``width``, ``height`` (integers).
- row: the question's 0-based data row in its csv (NExT-QA's BERT-FT features are indexed by it).
"""

from __future__ import annotations

import json
from pathlib import Path

from extract.names import SPLITS

from .base import AnnotationError, Question, VideoRecord, check_key, read_annotation_text, read_table, resolve_inside

TYPES = ("CW", "CH", "TN", "TP", "TC", "DC", "DL", "DO")
CHOICES = ("a0", "a1", "a2", "a3", "a4")
COLUMNS = ("video", "frame_count", "width", "height", "question", "answer", "qid", "type", *CHOICES)
VIDEO_MAP = "map_vid_vidorID.json"
_META = ("frame_count", "width", "height")


def load(root: Path, *, videos_dir: Path | None = None) -> tuple[list[VideoRecord], list[Question]]:
    """Read ``{train,val,test}.csv`` under ``root``; returns videos sorted by key and questions
    in file order (train, val, test)."""
    videos_root = videos_dir if videos_dir is not None else root / "videos"
    files = [(root / f"{split}.csv", split) for split in SPLITS if (root / f"{split}.csv").is_file()]
    if not files:
        raise AnnotationError(f"{root}: no NExT-QA question files; expected train.csv, val.csv and/or test.csv")
    map_path = root / VIDEO_MAP
    video_map = _read_video_map(map_path) if map_path.is_file() else None
    videos: dict[str, tuple[VideoRecord, str]] = {}  # key -> (record, where it was first seen)
    questions = []
    for path, split in files:
        qids: set[str] = set()
        for position, (line, row) in enumerate(read_table(path, delimiter=",", required=COLUMNS)):
            where = f"{path}: line {line}"
            key = check_key(row["video"], source=where)
            meta = {name: _integer(row, name, where) for name in _META}
            if key in videos:
                known, first = videos[key]
                if known.meta != meta:
                    raise AnnotationError(f"{where}: video {key} has {meta}, but {first} gives {known.meta}")
            else:
                videos[key] = (VideoRecord(key, _video_path(key, videos_root, video_map, map_path, where), meta),
                               where)
            if row["type"] not in TYPES:
                raise AnnotationError(f"{where}: type {row['type']!r} must be one of {', '.join(TYPES)}")
            if row["answer"] not in {str(i) for i in range(len(CHOICES))}:
                raise AnnotationError(f"{where}: answer {row['answer']!r} must be the index 0..4 of a0..a4")
            qid = f"{key}_{row['qid']}"
            if qid in qids:
                raise AnnotationError(f"{where}: question {qid!r} appears twice in {path.name}")
            qids.add(qid)
            questions.append(Question(key=key, qid=qid, question=row["question"], answer=row["answer"],
                                      task=row["type"], split=split,
                                      candidates=tuple(row[name] for name in CHOICES), row=position))
    return [videos[key][0] for key in sorted(videos)], questions


def _video_path(key: str, videos_root: Path, video_map: dict[str, str] | None, map_path: Path, where: str) -> Path:
    if video_map is None:
        return resolve_inside(videos_root, f"{key}.mp4", source=where)
    if key not in video_map:
        raise AnnotationError(f"{where}: video {key} has no entry in {map_path}")
    return resolve_inside(videos_root, f"{video_map[key]}.mp4", source=f"{map_path} (video {key})")


def _integer(row: dict[str, str], name: str, where: str) -> int:
    if not row[name].isdigit():
        raise AnnotationError(f"{where}: {name} {row[name]!r} must be a non-negative integer")
    return int(row[name])


def _read_video_map(path: Path) -> dict[str, str]:
    try:
        mapping = json.loads(read_annotation_text(path))
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(mapping, dict) or not all(isinstance(value, str) for value in mapping.values()):
        raise AnnotationError(f"{path}: expected a JSON object mapping video id -> '<folder>/<vidor id>'")
    return mapping
