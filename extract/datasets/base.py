"""Records shared by every dataset adapter: one ``VideoRecord`` per video, one ``Question`` per QA pair."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


class AnnotationError(ValueError):
    """An annotation file or row is unusable (bad columns, a path escaping the data root...)."""


@dataclass(frozen=True)
class VideoRecord:
    """One video to extract.

    key: the feature key under which every output array is stored (DESIGN.md section 2).
    path: absolute path of the video file (it may not exist: that video then fails alone).
    meta: free-form metadata from the annotations (e.g. NExT-QA width/height).
    """

    key: str
    path: Path
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Question:
    """One question about one video.

    key: the video key (a video can serve many questions).
    qid: identifier unique within (dataset, split).
    task: TGIF task (``count``, ``action``, ``transition``, ``frameqa``), NExT-QA type
        (``CW``, ``TN``...), or the question word for MSVD/MSRVTT (``what``...).
    candidates: answer options for multiple-choice tasks, empty otherwise; ``answer`` is then
        the index of the right option as a string.
    meta: extra annotation fields (e.g. the TGIF FrameQA ``frameqa_type``), not compared.
    row: 0-based data row in its split's annotation file, where a dataset's released per-question
        features are indexed by it (NExT-QA's BERT-FT ``bert_ft_<split>.h5``); None otherwise.
    """

    key: str
    qid: str
    question: str
    answer: str
    task: str
    split: str
    candidates: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)
    row: int | None = field(default=None, compare=False)


def resolve_inside(root: Path, relative: str, *, source: str) -> Path:
    """Join ``relative`` onto ``root`` and refuse anything that escapes ``root``.

    Raises AnnotationError naming ``source`` (the annotation file) for absolute paths and
    for ``..`` components that leave the data root. The check is lexical: a symlink inside
    the data root that points elsewhere (a common cluster layout) is accepted.
    """
    if not relative or PurePosixPath(relative).is_absolute():
        raise AnnotationError(f"{source}: video path {relative!r} must be relative to the data root {root}")
    depth = 0
    kept: list[str] = []
    for part in PurePosixPath(relative).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise AnnotationError(f"{source}: video path {relative!r} escapes the data root {root}")
            kept.pop()
        elif part != ".":
            depth += 1
            kept.append(part)
    if not kept:
        raise AnnotationError(f"{source}: video path {relative!r} names the data root itself, not a file")
    return root.joinpath(*kept)


def check_key(key: str, *, source: str) -> str:
    """Return ``key`` if it can name an HDF5 dataset (non-empty, no ``/``, not ``.``/``..``)."""
    if not key or "/" in key or "\0" in key or key in (".", "..") or key != key.strip():
        raise AnnotationError(f"{source}: video key {key!r} is not usable as a feature key "
                              "(empty, surrounding spaces, '/', a NUL character, '.' or '..'): fix the annotation file")
    return key


def read_table(path: Path, *, delimiter: str, required: tuple[str, ...],
               one_line_rows: bool = False) -> list[tuple[int, dict[str, str]]]:
    """Read a delimited annotation file with a header row.

    Returns ``(line, row)`` pairs, ``line`` being the 1-based line number for messages.
    Raises AnnotationError naming the file (and line) for missing columns and ragged rows.
    A UTF-8 byte-order mark and CRLF line ends (as in the TGIF-QA release) are accepted.
    ``one_line_rows``: every row is one line (TGIF-QA): a quoted field (its quotes doubled)
    is unquoted within its line but never continues onto the next one, so a stray quote
    fails its own line instead of merging the rows below into one field.
    """
    try:
        return _read_rows(path, delimiter, required, one_line_rows)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def read_annotation_text(path: Path) -> str:
    """The text of an annotation file (JSON, a mapping list); AnnotationError naming it if not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def _not_utf8(path: Path, e: UnicodeDecodeError) -> AnnotationError:
    return AnnotationError(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}; "
                           "Latin-1?): convert it, e.g. iconv -f latin1 -t utf-8")


def _csv_problem(path: Path, where: str, e: csv.Error) -> AnnotationError:
    """``e`` of the csv module as a message naming ``path`` and ``where`` ("line 3")."""
    if "field limit" in str(e):
        # csv's guard against runaway fields: no annotation field is that long unless a quote never closes.
        return AnnotationError(f"{path}: {where} has a field over the csv module's limit of "
                               f"{csv.field_size_limit()} characters: shorten it, or close the quote that runs on")
    return AnnotationError(f"{path}: {where}: {e}")


def _read_rows(path: Path, delimiter: str, required: tuple[str, ...],
               one_line_rows: bool) -> list[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if one_line_rows:
            lines = [line.removesuffix("\r") for line in handle.read().split("\n")]
            if lines and not lines[-1]:
                lines.pop()
            return _one_line_rows(path, lines, delimiter, required)
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            header = reader.fieldnames or []
            _check_header(path, header, required)
            return [(reader.line_num, _whole(path, reader.line_num, row, header)) for row in reader]
        except csv.Error as e:
            # The reader counts the lines it has finished: the bad one is the next.
            raise _csv_problem(path, f"line {reader.line_num + 1}", e) from None


def _whole(path: Path, line: int, row: dict, header: list[str]) -> dict[str, str]:
    """``row`` if it has one field per header column."""
    if None in row or None in row.values():
        found = sum(value is not None for name, value in row.items() if name is not None)
        found += len(row.get(None, []))
        raise AnnotationError(f"{path}: line {line} has {found} fields, expected {len(header)} (one per header column)")
    return row


def _check_header(path: Path, header: list[str], required: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in header]
    if missing:
        raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)}; "
                              f"found {', '.join(header) or 'no header'}")


def _one_line_rows(path: Path, lines: list[str], delimiter: str,
                   required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``read_table`` for files whose rows are one line each; ``lines`` without line ends."""

    def fields(number: int, line: str) -> list[str]:
        try:
            return next(csv.reader([line], delimiter=delimiter, strict=True), [])
        except csv.Error as e:
            if "field limit" in str(e):
                raise _csv_problem(path, f"line {number}", e) from None
            raise AnnotationError(f"{path}: line {number} has a quote that does not close on its line ({e}); "
                                  "rows are one line each, and a quote inside a quoted field is doubled") from None

    header = fields(1, lines[0]) if lines else []
    _check_header(path, header, required)
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = fields(number, line)
        if len(values) != len(header):
            raise AnnotationError(f"{path}: line {number} has {len(values)} fields, "
                                  f"expected {len(header)} (one per header column)")
        rows.append((number, dict(zip(header, values))))
    return rows
