"""Optional tier: the adapters on the real annotation samples in ``../shared/data``.

The directory is ``$VQA_SHARED_DATA`` when set, else ``shared/data`` next to the checkout.
Expected counts are computed here with the csv module, independently of the adapters.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from extract.datasets import load_dataset

SHARED = Path(os.environ.get("VQA_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TGIF = SHARED / "tgif-qa"
NEXTQA = SHARED / "nextqa"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"real samples not found at {SHARED} (set VQA_SHARED_DATA)"),
]


def read_rows(path: Path, delimiter: str) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_tgif_test_question_files():
    dataset = load_dataset("tgif", TGIF)
    all_keys = set()
    for task in ("count", "action", "transition", "frameqa"):
        rows = read_rows(TGIF / f"Test_{task}_question.csv", "\t")
        questions = [q for q in dataset.questions("test") if q.task == task]
        assert len(questions) == len(rows) > 0
        assert {q.key for q in questions} == {row["key"] for row in rows}
        if task in ("action", "transition"):
            assert all(q.candidates[int(q.answer)] == row[f"a{int(row['answer']) + 1}"]
                       for q, row in zip(questions, rows))
        all_keys |= {row["key"] for row in rows}
    assert [v.key for v in dataset.videos] == sorted(all_keys)
    assert dataset.questions("train") == []


def test_nextqa_val_file():
    dataset = load_dataset("nextqa", NEXTQA)
    rows = read_rows(NEXTQA / "val.csv", ",")
    assert len(dataset.questions("val")) == len(rows) > 0
    assert [v.key for v in dataset.videos] == sorted({row["video"] for row in rows})
    assert {q.task for q in dataset.questions()} <= {"CW", "CH", "TN", "TP", "TC", "DC", "DL", "DO"}
    assert all(v.path.parent.parent == NEXTQA.absolute() / "videos" for v in dataset.videos)


def test_sample_gifs_decode_with_decord():
    import decord

    gifs = sorted((TGIF / "gifs").glob("*.gif"))
    assert len(gifs) == 4
    for path in gifs:
        assert len(decord.VideoReader(str(path))) > 0, path
    folder = load_dataset("folder", TGIF / "gifs")
    assert [v.key for v in folder.videos] == sorted(path.stem for path in gifs)
