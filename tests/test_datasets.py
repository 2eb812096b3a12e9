"""Dataset adapters on small annotation files and tiny videos built in tmp_path."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import AnnotationError, Dataset, load_dataset
from extract.datasets.base import resolve_inside
from extract.datasets.tgif import write_tgif_questions


def write_gif(path: Path, frames: int = 2) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.new("RGB", (16, 12), (40 * i, 80, 120)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=[40, 70][:frames], loop=0)


def write_video(path: Path) -> None:
    """A 4-frame 32x32 MPEG-4 video (mp4 or avi by the suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=6)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


# ----------------------------------------------------------------------------- TGIF-QA


def tgif_row(task: str, gif: str, key: str, answer: object = "0", **extra) -> dict:
    row = {"gif_name": gif, "question": f"q about {gif}", "answer": answer, "vid_id": f"{task.upper()}1", "key": key}
    if task in ("action", "transition"):
        row.update({f"a{i}": f"option {i}" for i in range(1, 6)})
    if task == "frameqa":
        row.update(type="2", description="a description")
    row.update(extra)
    return row


def test_tgif_keys_dedup_tasks_and_answers(tmp_path):
    write_tgif_questions(tmp_path / "Train_count_question.csv", "count",
                         [tgif_row("count", "g7", "7", 3), tgif_row("count", "g10", "10", 1)])
    write_tgif_questions(tmp_path / "Test_count_question.csv", "count", [tgif_row("count", "g2", "2", 5)])
    write_tgif_questions(tmp_path / "Train_frameqa_question.csv", "frameqa",
                         [tgif_row("frameqa", "g7", "7", "red"), tgif_row("frameqa", "g7", "7", "cat", type="0")])
    write_tgif_questions(tmp_path / "Train_action_question.csv", "action",
                         [tgif_row("action", "g10", "10", 4, a5='respond "no"')])
    write_tgif_questions(tmp_path / "Test_transition_question.csv", "transition",
                         [tgif_row("transition", "g2", "2", 1)])
    write_gif(tmp_path / "gifs" / "g7.gif")

    dataset = load_dataset("tgif", tmp_path)

    assert isinstance(dataset, Dataset) and dataset.name == "tgif"
    assert [v.key for v in dataset.videos] == ["10", "2", "7"]
    assert [v.path for v in dataset.videos] == [tmp_path / "gifs" / f"{g}.gif" for g in ("g10", "g2", "g7")]
    assert len(dataset.questions()) == 7
    assert len(dataset.questions("train")) == 5 and len(dataset.questions("test")) == 2
    assert dataset.questions("val") == []
    assert len({(q.split, q.qid) for q in dataset.questions()}) == 7
    by_key = {}
    for question in dataset.questions():
        by_key.setdefault(question.key, []).append(question)
    assert len(by_key["7"]) == 3  # one GIF, many questions
    count = next(q for q in by_key["7"] if q.task == "count")
    assert (count.answer, count.candidates, count.qid) == ("3", (), "count_train_0")
    color, obj = [q for q in by_key["7"] if q.task == "frameqa"]
    assert (color.answer, color.meta["frameqa_type"], obj.meta["frameqa_type"]) == ("red", "color", "object")
    action = next(q for q in by_key["10"] if q.task == "action")
    assert action.candidates == ("option 1", "option 2", "option 3", "option 4", 'respond "no"')
    assert action.answer == "4" and action.candidates[int(action.answer)] == 'respond "no"'
    transition = by_key["2"][1]
    assert (transition.task, transition.split, transition.answer) == ("transition", "test", "1")


def test_tgif_reads_release_format_with_crlf_and_quotes(tmp_path):
    lines = ["gif_name\tquestion\ta1\ta2\ta3\ta4\ta5\tanswer\tvid_id\tkey",
             'tumblr_x\tWhat does the man do after dry hair ?\trun\tpose\tdrive\t"write ""i love you"""\tcount'
             '\t3\tTRANS1\t35691']
    (tmp_path / "Test_transition_question.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())

    dataset = load_dataset("tgif", tmp_path)

    (question,) = dataset.questions("test")
    assert question.key == "35691" and question.candidates[3] == 'write "i love you"'
    assert question.candidates[int(question.answer)] == 'write "i love you"'


def test_tgif_total_files_only_as_fallback(tmp_path):
    write_tgif_questions(tmp_path / "Train_count_question.csv", "count", [tgif_row("count", "a", "1", 2)])
    write_tgif_questions(tmp_path / "Total_count_question.csv", "count",
                         [tgif_row("count", "a", "1", 2), tgif_row("count", "b", "2", 2)])
    write_tgif_questions(tmp_path / "Total_action_question.csv", "action", [tgif_row("action", "c", "3", 0)])

    dataset = load_dataset("tgif", tmp_path)

    assert [(q.task, q.split) for q in dataset.questions()] == [("count", "train"), ("action", "total")]
    assert [v.key for v in dataset.videos] == ["1", "3"]
    assert len(dataset.questions("total")) == 1


def test_tgif_videos_dir_override(tmp_path):
    write_tgif_questions(tmp_path / "Test_count_question.csv", "count", [tgif_row("count", "a", "1", 2)])
    elsewhere = tmp_path / "elsewhere"
    assert load_dataset("tgif", tmp_path, videos_dir=elsewhere).videos[0].path == elsewhere / "a.gif"


def test_tgif_same_key_two_gifs_is_an_error(tmp_path):
    path = tmp_path / "Test_frameqa_question.csv"
    write_tgif_questions(path, "frameqa", [tgif_row("frameqa", "a", "5", "red"), tgif_row("frameqa", "b", "5", "red")])
    with pytest.raises(AnnotationError, match=r"Test_frameqa_question\.csv: line 3.*'5'.*'b'.*'a'"):
        load_dataset("tgif", tmp_path)


@pytest.mark.parametrize("gif_name", ["../x", "/abs/x", "a/../../x"])
def test_tgif_rejects_paths_escaping_the_root(tmp_path, gif_name):
    write_tgif_questions(tmp_path / "Test_count_question.csv", "count", [tgif_row("count", gif_name, "1", 2)])
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv: line 2"):
        load_dataset("tgif", tmp_path)


@pytest.mark.parametrize(("task", "row", "message"), [
    ("action", tgif_row("action", "a", "1", 5), "index 0..4"),
    ("count", tgif_row("count", "a", "1", "two"), "non-negative integer"),
    ("frameqa", tgif_row("frameqa", "a", "1", "red", type="7"), "frameqa type"),
    ("count", tgif_row("count", "a", "", 1), "video key"),
])
def test_tgif_rejects_bad_rows(tmp_path, task, row, message):
    write_tgif_questions(tmp_path / f"Train_{task}_question.csv", task, [row])
    with pytest.raises(AnnotationError, match=rf"Train_{task}_question\.csv: line 2.*{message}"):
        load_dataset("tgif", tmp_path)


def test_tgif_missing_files_and_columns(tmp_path):
    with pytest.raises(AnnotationError, match="no TGIF-QA question files"):
        load_dataset("tgif", tmp_path)
    (tmp_path / "Test_count_question.csv").write_text("gif_name\tquestion\tanswer\tkey\r\na\tq\t1\t1\r\n")
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv: missing column\(s\) vid_id"):
        load_dataset("tgif", tmp_path)
    (tmp_path / "Test_count_question.csv").write_text("gif_name\tquestion\tanswer\tvid_id\tkey\r\na\tq\t1\tC1\r\n")
    with pytest.raises(AnnotationError, match=r"line 2 has 4 fields, expected 5"):
        load_dataset("tgif", tmp_path)


def test_tgif_stray_quote_is_rejected_naming_the_line_not_merged(tmp_path):
    # TGIF rows are one line each: a field opening a quote it never closes on its line must not
    # swallow the rows below (they would vanish and key 4 would name another GIF).
    lines = ["gif_name\tquestion\tanswer\tvid_id\tkey",
             "g1\thow many times ?\t1\tC1\t1",
             'g2\t"how many times does he jump ?\t2\tC2\t2',
             "g3\thow many times ?\t3\tC3\t3",
             'g4\thow many "jumps ?\t4\tC4\t4']
    path = tmp_path / "Test_count_question.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv: line 3 .*quote"):
        load_dataset("tgif", tmp_path)
    del lines[2]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    dataset = load_dataset("tgif", tmp_path)
    assert [(v.key, v.meta["gif_name"]) for v in dataset.videos] == [("1", "g1"), ("3", "g3"), ("4", "g4")]
    assert dataset.questions()[-1].question == 'how many "jumps ?'


def test_tgif_row_with_extra_tab_names_file_and_line(tmp_path):
    lines = ["gif_name\tquestion\tanswer\tvid_id\tkey", "g1\tq\t1\tC1\t1", "g2\tq\t\t2\tC2\t2"]
    (tmp_path / "Test_count_question.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv: line 3 has 6 fields, expected 5"):
        load_dataset("tgif", tmp_path)


# ----------------------------------------------------------------------------- MSVD-QA / MSRVTT-QA


def qa_records(*pairs: tuple[int, str]) -> list[dict]:
    return [{"id": i, "question": question, "answer": "man", "video_id": video_id}
            for i, (video_id, question) in enumerate(pairs)]


def test_msvd_keys_paths_and_question_words(tmp_path):
    (tmp_path / "train_qa.json").write_text(json.dumps(qa_records((1, "what is a man doing?"), (1, "who runs?"),
                                                                  (2, "which dog barks?"))))
    (tmp_path / "test_qa.json").write_text(json.dumps([{"question": "How fast?", "answer": "fast", "video_id": 3},
                                                       {"question": "where?", "answer": "x", "video_id": 1}]))
    write_video(tmp_path / "videos" / "vid1.avi")
    write_video(tmp_path / "videos" / "vid2.mp4")

    dataset = load_dataset("msvd", tmp_path)

    assert [v.key for v in dataset.videos] == ["vid1", "vid2", "vid3"]
    assert [v.path.name for v in dataset.videos] == ["vid1.avi", "vid2.mp4", "vid3.avi"]  # vid3 is missing
    assert [q.task for q in dataset.questions()] == ["what", "who", "other", "how", "where"]
    assert [q.qid for q in dataset.questions("train")] == ["0", "1", "2"]
    assert [q.qid for q in dataset.questions("test")] == ["test_0", "test_1"]
    assert sum(q.key == "vid1" for q in dataset.questions()) == 3


def test_msvd_youtube_mapping(tmp_path):
    (tmp_path / "val_qa.json").write_text(json.dumps(qa_records((1, "what?"), (2, "what?"))))
    (tmp_path / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\nabc_1_2 vid2\n")
    write_video(tmp_path / "videos" / "-4wsuPCjDBc_5_15.avi")

    dataset = load_dataset("msvd", tmp_path)

    assert [v.path for v in dataset.videos] == [tmp_path / "videos" / "-4wsuPCjDBc_5_15.avi",
                                                tmp_path / "videos" / "abc_1_2.avi"]
    assert dataset.questions("val")[1].key == "vid2"

    (tmp_path / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\n")
    with pytest.raises(AnnotationError, match=r"youtube_mapping\.txt: no line for vid2.*val_qa\.json: record 1"):
        load_dataset("msvd", tmp_path)
    (tmp_path / "youtube_mapping.txt").write_text("../evil vid1\nabc vid2\n")
    with pytest.raises(AnnotationError, match=r"youtube_mapping\.txt.*escapes the data root"):
        load_dataset("msvd", tmp_path)


def test_msrvtt_keys_and_paths(tmp_path):
    (tmp_path / "test_qa.json").write_text(json.dumps(qa_records((7010, "what is it?"), (12, "who?"), (7010, "how?"))))
    write_video(tmp_path / "videos" / "video12.mp4")

    dataset = load_dataset("msrvtt", tmp_path)

    assert [v.key for v in dataset.videos] == ["video12", "video7010"]
    assert [v.path for v in dataset.videos] == [tmp_path / "videos" / "video12.mp4",
                                                tmp_path / "videos" / "video7010.mp4"]
    assert len(dataset.questions("test")) == 3


@pytest.mark.parametrize(("records", "message"), [
    ([{"question": "q", "answer": "a", "video_id": "../x"}], r"record 0: video_id '\.\./x'"),
    ([{"question": "q", "answer": "a"}], "record 0: video_id None"),
    ([{"question": "q", "answer": 3, "video_id": 1}], "record 0: 'answer' must be a string"),
    (qa_records((1, "q")) * 2, "record 1: question id '0' appears twice"),
    ({"question": "q"}, "expected a JSON list"),
])
def test_msvd_rejects_bad_records(tmp_path, records, message):
    (tmp_path / "train_qa.json").write_text(json.dumps(records))
    with pytest.raises(AnnotationError, match=rf"train_qa\.json.*{message}"):
        load_dataset("msvd", tmp_path)


def test_msvd_missing_files(tmp_path):
    with pytest.raises(AnnotationError, match="no MSRVTT-QA question files; expected train_qa.json"):
        load_dataset("msrvtt", tmp_path)


@pytest.mark.parametrize("name", ["train_qa.json", "youtube_mapping.txt"])
def test_msvd_latin1_files_are_named(tmp_path, name):
    (tmp_path / "train_qa.json").write_text(json.dumps(qa_records((1, "what?"))))
    (tmp_path / "youtube_mapping.txt").write_text("abc vid1\n")
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes().replace(b"what", b"wh\xe9t").replace(b"abc", b"\xe9bc"))
    with pytest.raises(AnnotationError, match=rf"{name}: not UTF-8 text \(byte \d+ is b'\\xe9'"):
        load_dataset("msvd", tmp_path)


# ----------------------------------------------------------------------------- NExT-QA

NEXTQA_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"


def nextqa_line(video: str, qid: int, answer: int = 2, qtype: str = "CW", width: int = 640) -> str:
    return f"{video},369,{width},480,why did it {qid},{answer},{qid},{qtype},o0,o1,o2,o3,o4"


def write_nextqa(path: Path, *lines: str) -> None:
    path.write_text("\n".join([NEXTQA_HEADER, *lines]) + "\n")


def test_nextqa_with_video_map(tmp_path):
    write_nextqa(tmp_path / "val.csv", nextqa_line("4010069381", 0), nextqa_line("4010069381", 1, 4, "TN"),
                 nextqa_line("2909445186", 0, 0, "DO"))
    write_nextqa(tmp_path / "train.csv", nextqa_line("2909445186", 5))
    (tmp_path / "map_vid_vidorID.json").write_text(
        json.dumps({"4010069381": "1000/4010069381", "2909445186": "0101/2909445186"}))
    write_video(tmp_path / "videos" / "0101" / "2909445186.mp4")

    dataset = load_dataset("nextqa", tmp_path)

    assert [v.key for v in dataset.videos] == ["2909445186", "4010069381"]
    assert [v.path for v in dataset.videos] == [tmp_path / "videos" / "0101" / "2909445186.mp4",
                                                tmp_path / "videos" / "1000" / "4010069381.mp4"]
    assert dataset.videos[0].meta == {"frame_count": 369, "width": 640, "height": 480}
    assert [q.qid for q in dataset.questions("val")] == ["4010069381_0", "4010069381_1", "2909445186_0"]
    assert [q.task for q in dataset.questions()] == ["CW", "CW", "TN", "DO"]  # train first
    question = dataset.questions("val")[1]
    assert question.candidates == ("o0", "o1", "o2", "o3", "o4") and question.answer == "4"


def test_nextqa_without_map(tmp_path):
    write_nextqa(tmp_path / "test.csv", nextqa_line("123", 0))
    dataset = load_dataset("nextqa", tmp_path, videos_dir=tmp_path / "NExTVideo")
    assert dataset.videos[0].path == tmp_path / "NExTVideo" / "123.mp4"


def test_nextqa_latin1_video_map_is_named(tmp_path):
    write_nextqa(tmp_path / "val.csv", nextqa_line("123", 0))
    (tmp_path / "map_vid_vidorID.json").write_bytes(b'{"123": "0101/123\xe9"}')
    with pytest.raises(AnnotationError, match=r"map_vid_vidorID\.json: not UTF-8 text"):
        load_dataset("nextqa", tmp_path)


@pytest.mark.parametrize("target", ["../x", "/abs/x", "0101/../../x"])
def test_nextqa_rejects_map_paths_escaping_the_root(tmp_path, target):
    write_nextqa(tmp_path / "val.csv", nextqa_line("123", 0))
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"123": target}))
    with pytest.raises(AnnotationError, match=r"map_vid_vidorID\.json \(video 123\)"):
        load_dataset("nextqa", tmp_path)


@pytest.mark.parametrize(("line", "message"), [
    (nextqa_line("../x", 0), r"video key '\.\./x'"),
    (nextqa_line("/abs/x", 0), "video key '/abs/x'"),
    (nextqa_line("1", 0, qtype="XX"), "type 'XX'"),
    (nextqa_line("1", 0, answer=5), "answer '5'"),
    ("1,many,640,480,q,0,0,CW,a,b,c,d,e", "frame_count 'many'"),
])
def test_nextqa_rejects_bad_rows(tmp_path, line, message):
    write_nextqa(tmp_path / "val.csv", line)
    with pytest.raises(AnnotationError, match=rf"val\.csv: line 2: {message}"):
        load_dataset("nextqa", tmp_path)


def test_nextqa_inconsistent_video_and_duplicate_question(tmp_path):
    write_nextqa(tmp_path / "val.csv", nextqa_line("1", 0), nextqa_line("1", 1, width=320))
    with pytest.raises(AnnotationError, match=r"val\.csv: line 3: video 1 has .*'width': 320.*line 2"):
        load_dataset("nextqa", tmp_path)
    write_nextqa(tmp_path / "val.csv", nextqa_line("1", 0), nextqa_line("1", 0))
    with pytest.raises(AnnotationError, match=r"line 3: question '1_0' appears twice"):
        load_dataset("nextqa", tmp_path)
    write_nextqa(tmp_path / "val.csv", nextqa_line("1", 0))
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"2": "0000/2"}))
    with pytest.raises(AnnotationError, match=r"line 2: video 1 has no entry in .*map_vid_vidorID\.json"):
        load_dataset("nextqa", tmp_path)


# ----------------------------------------------------------------------------- folder


def test_folder_recursive_case_insensitive(tmp_path):
    write_gif(tmp_path / "b.GIF")
    write_video(tmp_path / "sub" / "a.mp4")
    write_video(tmp_path / "sub" / "deeper" / "c.Avi")
    (tmp_path / "sub" / "notes.txt").write_text("not a video")
    (tmp_path / ".hidden").mkdir()
    write_gif(tmp_path / ".hidden" / "a.gif")  # hidden: skipped, so no clash with sub/a.mp4

    dataset = load_dataset("folder", tmp_path)

    assert [(v.key, v.path) for v in dataset.videos] == [
        ("a", tmp_path / "sub" / "a.mp4"), ("b", tmp_path / "b.GIF"), ("c", tmp_path / "sub" / "deeper" / "c.Avi")]
    assert dataset.questions() == []
    only_sub = load_dataset("folder", tmp_path / "unused", videos_dir=tmp_path / "sub")
    assert [v.key for v in only_sub.videos] == ["a", "c"]


def test_folder_duplicate_stems_are_an_error(tmp_path):
    write_video(tmp_path / "x" / "clip.mp4")
    write_gif(tmp_path / "y" / "clip.gif")
    with pytest.raises(AnnotationError, match="share a key") as error:
        load_dataset("folder", tmp_path)
    assert str(tmp_path / "x" / "clip.mp4") in str(error.value) and str(tmp_path / "y" / "clip.gif") in str(error.value)


def test_folder_symlink_loop_terminates(tmp_path):
    write_gif(tmp_path / "videos" / "sub" / "a.gif")
    os.symlink(tmp_path / "videos", tmp_path / "videos" / "sub" / "loop")
    os.symlink(tmp_path / "outside", tmp_path / "videos" / "linked")
    write_gif(tmp_path / "outside" / "b.gif")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(load_dataset("folder", tmp_path / "videos")), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "walking a directory symlink loop did not terminate"
    assert [v.key for v in result[0].videos] == ["a", "b"]


def test_folder_not_a_directory(tmp_path):
    with pytest.raises(AnnotationError, match="not a directory of videos"):
        load_dataset("folder", tmp_path / "missing")


# ----------------------------------------------------------------------------- common


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("kinetics", tmp_path)
    with pytest.raises(AnnotationError, match="the nextqa data root does not exist"):
        load_dataset("nextqa", tmp_path / "missing")
    with pytest.raises(ValueError, match="split must be one of"):
        Dataset("x", tmp_path, []).questions("training")


def test_resolve_inside_is_lexical(tmp_path):
    assert resolve_inside(tmp_path, "a/./../b.mp4", source="f") == tmp_path / "b.mp4"
    for bad in ("", ".", "../b.mp4", "a/../../b.mp4", "/etc/passwd"):
        with pytest.raises(AnnotationError, match="^f: "):
            resolve_inside(tmp_path, bad, source="f")
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "store", tmp_path / "root" / "videos")  # symlinked video store: accepted
    assert resolve_inside(tmp_path / "root", "videos/a.mp4", source="f") == tmp_path / "root" / "videos" / "a.mp4"
