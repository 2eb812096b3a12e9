"""Benchmark metrics: NExT-QA accuracy by question type on a hand-checked example, TGIF-QA and
MSVD-QA summaries, and the published-table format."""

from __future__ import annotations

import json

import pytest

from extract.videoqa.metrics import evaluate_nextqa, evaluate_predictions, format_table, summarize, write_predictions

HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
# (video, qid, type, right answer, predicted answer)
QUESTIONS = [
    ("100", 1, "CW", 0, 0),  # right
    ("100", 2, "CW", 1, 3),  # wrong
    ("100", 3, "CH", 2, 2),  # right
    ("200", 1, "TN", 4, 4),  # right
    ("200", 2, "TP", 3, 0),  # wrong; TP is counted as TN
    ("200", 3, "TC", 1, 1),  # right
    ("300", 1, "DC", 0, 1),  # wrong
    ("300", 2, "DL", 2, 2),  # right
    ("300", 4, "DO", 3, 3),  # right
    ("300", 5, "DO", 4, 2),  # wrong
]


@pytest.fixture
def nextqa_files(tmp_path):
    csv_path = tmp_path / "val.csv"
    csv_path.write_text(HEADER + "".join(
        f"{video},100,640,480,why did it happen,{answer},{qid},{qtype},a,b,c,d,e\n"
        for video, qid, qtype, answer, _ in QUESTIONS))
    predictions = {f"{video}_{qid}": {"prediction": predicted, "answer": answer}
                   for video, qid, _, answer, predicted in QUESTIONS}
    json_path = tmp_path / "predictions.json"
    json_path.write_text(json.dumps(predictions))
    return json_path, csv_path


def test_nextqa_accuracy_by_hand(nextqa_files):
    metrics = evaluate_nextqa(*nextqa_files)
    expected = {
        "CW": 50.0,          # 1 of 2
        "CH": 100.0,         # 1 of 1
        "TN": 50.0,          # TN right + TP wrong: 1 of 2
        "TC": 100.0,         # 1 of 1
        "DC": 0.0,           # 0 of 1
        "DL": 100.0,         # 1 of 1
        "DO": 50.0,          # 1 of 2
        "C": 200 / 3,        # CW + CH: 2 of 3 = 66.67
        "T": 200 / 3,        # TN + TP + TC: 2 of 3 = 66.67
        "D": 50.0,           # DC + DL + DO: 2 of 4
        "All": 60.0,         # 6 of 10
    }
    assert list(metrics) == list(expected)
    assert metrics == pytest.approx(expected)
    table = format_table(metrics)
    assert table.splitlines()[0].split("|")[1].strip() == "CW"
    assert "| 66.67 |" in table and "60.00 |" in table


def test_nextqa_refuses_missing_or_contradicting_predictions(nextqa_files, tmp_path):
    json_path, csv_path = nextqa_files
    predictions = json.loads(json_path.read_text())
    del predictions["300_5"]
    json_path.write_text(json.dumps(predictions))
    with pytest.raises(ValueError, match="no prediction for 1 of 10"):
        evaluate_nextqa(json_path, csv_path)
    predictions["300_5"] = {"prediction": 2, "answer": 0}
    json_path.write_text(json.dumps(predictions))
    with pytest.raises(ValueError, match="300_5 has answer 0"):
        evaluate_nextqa(json_path, csv_path)


def test_tgif_and_msvd_summaries(tmp_path):
    records = [
        {"video": "1", "qid": "c1", "task": "count", "prediction": 3, "answer": 5},   # squared error 4
        {"video": "2", "qid": "c2", "task": "count", "prediction": 1, "answer": 1},   # 0
        {"video": "1", "qid": "a1", "task": "action", "prediction": 2, "answer": 2},  # right
        {"video": "3", "qid": "a2", "task": "action", "prediction": 0, "answer": 4},  # wrong
        {"video": "3", "qid": "a3", "task": "action", "prediction": 4, "answer": 4},  # right
    ]
    assert summarize(records, "tgif") == pytest.approx({"Count": 2.0, "Action": 200 / 3})
    path = write_predictions(records, tmp_path / "predictions.json")
    assert set(json.loads(path.read_text())) == {"1_c1", "2_c2", "1_a1", "3_a2", "3_a3"}
    assert evaluate_predictions(path, "tgif") == pytest.approx({"Count": 2.0, "Action": 200 / 3})
    with pytest.raises(ValueError, match="share the prediction key"):
        write_predictions(records + records[:1], tmp_path / "again.json")

    msvd = [{"task": w, "prediction": "a", "answer": a} for w, a in
            [("what", "a"), ("what", "b"), ("who", "a"), ("how", "b"), ("when", "a"), ("where", "a")]]
    assert summarize(msvd, "msvd") == pytest.approx(
        {"what": 50.0, "who": 100.0, "how": 0.0, "when": 100.0, "where": 100.0, "All": 400 / 6})
    assert format_table({"Count": 3.754, "Action": 84.4}) == (
        "| Count | Action |\n|-------|--------|\n|  3.75 |  84.40 |")
