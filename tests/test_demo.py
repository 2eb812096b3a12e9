"""The synthetic demo dataset: determinism, GIF timing, and answers checked against the pixels.

The pixel checks use their own reference (hue bands, fill ratios, centroids), not the
generator's tables, so that they are an independent check of the questions.
"""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import AnnotationError, generate_demo, load_dataset


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(root)
    return root


@pytest.fixture(scope="module")
def demo(demo_root):
    return load_dataset("demo", demo_root)


def read_gif(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """All frames as RGB arrays and their delays in ms, read with Pillow."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        pairs = [(np.asarray(frame.convert("RGB")), frame.info["duration"]) for frame in ImageSequence.Iterator(image)]
    return [frame for frame, _ in pairs], [delay for _, delay in pairs]


def shape_mask(frame: np.ndarray) -> np.ndarray:
    """Saturated pixels: the backgrounds are grey, the shape is not."""
    return frame.max(axis=2).astype(int) - frame.min(axis=2) > 80


def color_name(frame: np.ndarray) -> str:
    red, green, blue = frame[shape_mask(frame)].mean(axis=0) / 255
    hue = colorsys.rgb_to_hsv(red, green, blue)[0] * 360
    for name, low, high in (("red", -20, 20), ("yellow", 35, 70), ("green", 90, 160), ("blue", 200, 250),
                            ("purple", 260, 320)):
        if low <= hue <= high or low <= hue - 360 <= high:
            return name
    raise AssertionError(f"hue {hue:.0f} matches no colour name")


def shape_name(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    fill = mask.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))  # pi/4 for a disc, 1 square, 1/2 triangle
    return "square" if fill > 0.92 else "circle" if fill > 0.68 else "triangle"


def action_between(before: np.ndarray, after: np.ndarray) -> str:
    """What the shape did between two frames where it is visible."""
    area = after.sum() / before.sum()
    if area > 1.3:
        return "grow"
    if area < 1 / 1.3:
        return "shrink"
    (y0, x0), (y1, x1) = np.argwhere(before).mean(axis=0), np.argwhere(after).mean(axis=0)
    height, width = before.shape
    dx, dy = (x1 - x0) / width, (y1 - y0) / height
    if abs(dx) > abs(dy):
        return "move right" if dx > 0 else "move left"
    return "move down" if dy > 0 else "move up"


def runs_of_absence(visible: list[bool]) -> int:
    return sum(1 for i in range(1, len(visible)) if visible[i - 1] and not visible[i])


def test_same_seed_gives_byte_identical_files(tmp_path, demo_root):
    generate_demo(tmp_path / "again")
    files = sorted(path.relative_to(demo_root) for path in demo_root.rglob("*") if path.is_file())
    again = sorted(path.relative_to(tmp_path / "again") for path in (tmp_path / "again").rglob("*") if path.is_file())
    assert files == again and len(files) == 40 + 8 + 1
    assert all((demo_root / name).read_bytes() == (tmp_path / "again" / name).read_bytes() for name in files)
    generate_demo(tmp_path / "other", seed=1)
    first = "gifs/demo_0000.gif"
    assert (tmp_path / "other" / first).read_bytes() != (demo_root / first).read_bytes()


def test_layout_and_splits(demo):
    assert len(demo.videos) == 40 and [v.key for v in demo.videos] == sorted(str(i) for i in range(40))
    train = {q.key for q in demo.questions("train")}
    test = {q.key for q in demo.questions("test")}
    assert not train & test and len(train) == 24 and len(test) == 16
    tasks = [q.task for q in demo.questions()]
    assert tasks.count("count") == 40 and tasks.count("frameqa") == 80
    assert tasks.count("action") == 20 and tasks.count("transition") == 20
    assert all(v.path.is_file() for v in demo.videos)


def test_gifs_have_unequal_delays(demo):
    widths, heights = set(), set()
    for video in demo.videos:
        frames, delays = read_gif(video.path)
        assert len(frames) > 1, video.path
        assert len(set(delays)) > 1 and all(d % 10 == 0 and d >= 40 for d in delays), (video.path, delays)
        assert 1500 <= sum(delays) <= 4100, (video.path, sum(delays))
        heights.add(frames[0].shape[0])
        widths.add(frames[0].shape[1])
        assert 64 <= frames[0].shape[0] <= 160 and 64 <= frames[0].shape[1] <= 160
    assert len(widths) > 10 and len(heights) > 10


def test_decord_reads_what_pillow_reads(demo):
    import decord

    for video in demo.videos[:8]:
        frames, delays = read_gif(video.path)
        reader = decord.VideoReader(str(video.path))
        assert len(reader) == len(frames)
        np.testing.assert_array_equal(reader.get_batch(list(range(len(reader)))).asnumpy(), np.stack(frames))
        starts = reader.get_frame_timestamp(list(range(len(reader))))[:, 0]
        np.testing.assert_allclose(starts, np.cumsum([0, *delays[:-1]]) / 1000, atol=1e-3)


def test_frameqa_answers_match_pixels(demo):
    paths = {v.key: v.path for v in demo.videos}
    checked = 0
    for question in demo.questions():
        if question.task != "frameqa":
            continue
        frame = read_gif(paths[question.key])[0][0]
        if question.meta["frameqa_type"] == "color":
            assert color_name(frame) == question.answer, question
        else:
            assert question.meta["frameqa_type"] == "object"
            assert shape_name(shape_mask(frame)) == question.answer, question
        checked += 1
    assert checked == 80


def test_count_answers_match_pixels_also_at_6_fps(demo):
    paths = {v.key: v.path for v in demo.videos}
    answers = set()
    for question in (q for q in demo.questions() if q.task == "count"):
        frames, delays = read_gif(paths[question.key])
        visible = [bool(shape_mask(frame).any()) for frame in frames]
        assert visible[0] and visible[-1]
        assert runs_of_absence(visible) == int(question.answer), question
        starts = np.cumsum([0, *delays[:-1]])
        grid = [visible[np.searchsorted(starts, k * 1000 / 6, side="right") - 1]
                for k in range(int(np.ceil(sum(delays) * 6 / 1000)))]  # sample and hold, DESIGN.md section 1
        assert runs_of_absence(grid) == int(question.answer), question
        answers.add(question.answer)
    assert answers == {"1", "2", "3", "4", "5"}


def test_action_and_transition_answers_match_pixels(demo):
    paths = {v.key: v.path for v in demo.videos}
    for question in demo.questions():
        if question.task not in ("action", "transition"):
            continue
        frames, delays = read_gif(paths[question.key])
        masks = [shape_mask(frame) for frame in frames]
        starts = np.cumsum([0, *delays[:-1]])
        seen = [i for i, mask in enumerate(masks) if mask.any()]
        assert len(question.candidates) == 5 and len(set(question.candidates)) == 5
        answer = question.candidates[int(question.answer)]
        if question.task == "action":
            assert action_between(masks[seen[0]], masks[seen[-1]]) == answer, question
            continue
        half = sum(delays) / 2  # each of the two actions takes half of the video
        first_half = [i for i in seen if starts[i] < half]
        second_half = [i for i in seen if starts[i] >= half]
        first = action_between(masks[first_half[0]], masks[first_half[-1]])
        second = action_between(masks[second_half[0]], masks[second_half[-1]])
        word, named = re.fullmatch(r"what does the \w+ \w+ do (after|before) (.+) \?", question.question).groups()
        assert (named, answer) == ((first, second) if word == "after" else (second, first)), question
        assert named not in question.candidates


def test_load_generates_once_and_refuses_foreign_directories(tmp_path):
    root = tmp_path / "demo"
    dataset = load_dataset("demo", root)
    marker = root / "demo.json"
    assert json.loads(marker.read_text()) == {"version": 1, "num_videos": 40, "seed": 0}
    stamp = marker.stat().st_mtime_ns
    assert load_dataset("demo", root).questions() == dataset.questions()
    assert marker.stat().st_mtime_ns == stamp  # not regenerated
    assert not [p for p in tmp_path.iterdir() if p.name != "demo"]  # no staging directory left behind

    (tmp_path / "empty").mkdir()
    assert len(load_dataset("demo", tmp_path / "empty").videos) == 40

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(AnnotationError, match="not an empty directory"):
        load_dataset("demo", tmp_path / "foreign")
    marker.write_text(json.dumps({"version": 0, "num_videos": 40, "seed": 0}))
    with pytest.raises(AnnotationError, match="generator version 0"):
        load_dataset("demo", root)
    marker.write_text("{")
    with pytest.raises(AnnotationError, match="unreadable demo marker"):
        load_dataset("demo", root)
    with pytest.raises(ValueError, match="videos_dir"):
        load_dataset("demo", root, videos_dir=tmp_path)


def test_small_demo(tmp_path):
    generate_demo(tmp_path / "small", num_videos=3, seed=5)
    dataset = load_dataset("demo", tmp_path / "small")
    assert len(dataset.videos) == 3 and {q.split for q in dataset.questions()} == {"train", "test"}
    with pytest.raises(ValueError, match="num_videos must be at least 1"):
        generate_demo(tmp_path / "none", num_videos=0)
