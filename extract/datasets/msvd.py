"""MSVD-QA and MSRVTT-QA annotations.

Xu et al., "Video Question Answering via Gradually Refined Attention over Appearance and
Motion", ACM Multimedia 2017. Both datasets ship ``{train,val,test}_qa.json``: a JSON list of
records ``{"question", "answer", "video_id"[, "id"]}`` with an integer ``video_id``.

- key: ``vid<video_id>`` (MSVD) or ``video<video_id>`` (MSRVTT).
- video file: ``<videos>/<stem>.<ext>`` with ``<videos>`` = ``root/videos`` unless given.
  The stem is the key, except for MSVD when ``root/youtube_mapping.txt`` exists (lines
  ``<youtube_name> vid<id>``, as in the MSVD-QA release): the original YouTube clip name is
  then used. The file with that stem and any extension is taken; none found means
  ``.avi`` (MSVD) / ``.mp4`` (MSRVTT), and that video fails alone at extraction.
- qid: ``str(id)`` when records carry ``id``, else ``<split>_<index>``; unique per split.
- task: the question's first word when it is what / who / how / when / where, else ``other``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from extract.names import SPLITS

from .base import AnnotationError, Question, VideoRecord, check_key, read_annotation_text, resolve_inside

QUESTION_WORDS = ("what", "who", "how", "when", "where")
YOUTUBE_MAPPING = "youtube_mapping.txt"


def load_msvd(root: Path, *, videos_dir: Path | None = None) -> tuple[list[VideoRecord], list[Question]]:
    """MSVD-QA: keys ``vid<id>``, videos ``vid<id>.*`` or named through ``youtube_mapping.txt``."""
    mapping_path = root / YOUTUBE_MAPPING
    stems = _read_youtube_mapping(mapping_path) if mapping_path.is_file() else None
    return _load(root, videos_dir, dataset="MSVD-QA", prefix="vid", default_ext=".avi",
                 stems=stems, stems_source=mapping_path)


def load_msrvtt(root: Path, *, videos_dir: Path | None = None) -> tuple[list[VideoRecord], list[Question]]:
    """MSRVTT-QA: keys ``video<id>``, videos ``video<id>.mp4``."""
    return _load(root, videos_dir, dataset="MSRVTT-QA", prefix="video", default_ext=".mp4",
                 stems=None, stems_source=None)


def question_task(question: str) -> str:
    """The question word used to break accuracy down (``other`` when not a wh-word)."""
    word = re.match(r"[a-z]*", question.strip().lower()).group()
    return word if word in QUESTION_WORDS else "other"


def _load(root: Path, videos_dir: Path | None, *, dataset: str, prefix: str, default_ext: str,
          stems: dict[str, str] | None, stems_source: Path | None) -> tuple[list[VideoRecord], list[Question]]:
    videos = videos_dir if videos_dir is not None else root / "videos"
    files = [(root / f"{split}_qa.json", split) for split in SPLITS if (root / f"{split}_qa.json").is_file()]
    if not files:
        raise AnnotationError(f"{root}: no {dataset} question files; expected train_qa.json, val_qa.json "
                              "and/or test_qa.json")
    first_seen: dict[str, str] = {}  # key -> where it was first referenced
    questions = []
    for path, split in files:
        qids: set[str] = set()
        for index, record in enumerate(_read_records(path)):
            where = f"{path}: record {index}"
            for name in ("question", "answer"):
                if not isinstance(record.get(name), str):
                    raise AnnotationError(f"{where}: {name!r} must be a string, got {record.get(name)!r}")
            key = _video_key(record.get("video_id"), prefix=prefix, where=where)
            qid = str(record["id"]) if "id" in record else f"{split}_{index}"
            if qid in qids:
                raise AnnotationError(f"{where}: question id {qid!r} appears twice in {split}")
            qids.add(qid)
            first_seen.setdefault(key, where)
            questions.append(Question(key=key, qid=qid, question=record["question"], answer=record["answer"],
                                      task=question_task(record["question"]), split=split))
    on_disk = _files_by_stem(videos)
    records = []
    for key in sorted(first_seen):
        if stems is None:
            stem, source = key, first_seen[key]
        elif key in stems:
            stem, source = stems[key], f"{stems_source} (for {key})"
        else:
            raise AnnotationError(f"{stems_source}: no line for {key}, which {first_seen[key]} refers to")
        matches = on_disk.get(stem, [])
        if len(matches) > 1:
            raise AnnotationError(f"{videos}: several files for video {key}: {', '.join(map(str, matches))}")
        name = matches[0].name if matches else f"{stem}{default_ext}"
        records.append(VideoRecord(key, resolve_inside(videos, name, source=source)))
    return records, questions


def _read_records(path: Path) -> list[dict]:
    try:
        records = json.loads(read_annotation_text(path))
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise AnnotationError(f"{path}: expected a JSON list of question records (objects)")
    return records


def _video_key(video_id: object, *, prefix: str, where: str) -> str:
    """``7`` / ``"7"`` / ``"<prefix>7"`` -> ``"<prefix>7"``."""
    text = str(video_id) if isinstance(video_id, (int, str)) and not isinstance(video_id, bool) else ""
    digits = text[len(prefix):] if text.startswith(prefix) else text
    if not digits.isdigit():
        raise AnnotationError(f"{where}: video_id {video_id!r} must be an integer (or '{prefix}<integer>')")
    return check_key(f"{prefix}{int(digits)}", source=where)


def _read_youtube_mapping(path: Path) -> dict[str, str]:
    """``<youtube_name> vid<id>`` lines -> {``vid<id>``: youtube_name}."""
    stems: dict[str, str] = {}
    for line_number, line in enumerate(read_annotation_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].startswith("vid") or not fields[1][3:].isdigit():
            raise AnnotationError(f"{path}: line {line_number} should read '<youtube_name> vid<id>', got {line!r}")
        name, key = fields[0], f"vid{int(fields[1][3:])}"
        if stems.get(key, name) != name:
            raise AnnotationError(f"{path}: line {line_number} maps {key} to {name!r}, "
                                  f"an earlier line to {stems[key]!r}")
        stems[key] = name
    return stems


def _files_by_stem(directory: Path) -> dict[str, list[Path]]:
    """Regular files directly in ``directory`` grouped by stem (empty when it does not exist)."""
    if not directory.is_dir():
        return {}
    grouped: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            grouped.setdefault(path.stem, []).append(path)
    return grouped
