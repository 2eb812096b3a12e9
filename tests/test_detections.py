"""External detections: every validation reason, nearest-within-tolerance matching against a
brute-force oracle, empty frames, label vocabularies, and JSON / HDF5 equivalence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from extract.detections import (
    DetectionError,
    DetectionSource,
    default_tolerance,
    nearest_frames,
    write_detections_hdf5,
    write_detections_json,
)


def frame(time, boxes=(), scores=None, labels=None):
    boxes = [list(b) for b in boxes]
    return {"time": time, "boxes": boxes, "scores": scores if scores is not None else [0.5] * len(boxes),
            "labels": labels if labels is not None else [1] * len(boxes)}


def write(dir_: Path, key: str, obj) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / f"{key}.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def load(tmp_path: Path, obj, *, frame_size=(100, 80), **kw):
    write(tmp_path / "dets", "v", obj)
    return DetectionSource(tmp_path / "dets", **kw).load("v", frame_size=frame_size)


GOOD_BOX = (10, 10, 30, 40)


@pytest.mark.parametrize("obj, reason", [
    ("{not json", "malformed JSON"),
    ([1, 2], "expected an object with a 'frames' list"),
    ({"frame": []}, "expected an object with a 'frames' list"),
    ({"frames": [3]}, "frame 0: expected an object"),
    ({"frames": [{"time": 0, "boxes": []}]}, "missing 'scores', 'labels'"),
    ({"frames": [{"time": 0, "boxes": {}, "scores": [], "labels": []}]}, "expected 'boxes' a list"),
    ({"frames": [frame("0")]}, "expected 'time' a number"),
    ({"frames": [frame(-1.0)]}, "finite number >= 0"),
    ({"frames": [frame(0.5), frame(0.5)]}, "frame 1: expected 'time' > 0.5"),
    ({"frames": [frame(0.0, [(1, 2, 3)])]}, "box 0: expected [x1, y1, x2, y2] numbers"),
    ({"frames": [frame(0.0, [GOOD_BOX], scores=["high"])]}, "score 0: expected a number"),
    ({"frames": [frame(0.0, [GOOD_BOX], labels=[1.5])]}, "label 0: expected an int or a class name"),
    ({"frames": [frame(0.0, [GOOD_BOX, GOOD_BOX], scores=[0.5])]}, "length mismatch: 2 boxes, 1 scores"),
    ({"frames": [frame(0.0, [GOOD_BOX], labels=[1, 2])]}, "length mismatch: 1 boxes, 1 scores, 2 labels"),
    ('{"frames": [{"time": 0, "boxes": [[NaN, 1, 2, 3]], "scores": [1], "labels": [0]}]}', "NaN or infinite"),
    ('{"frames": [{"time": 0, "boxes": [[0, 1, 2, 3]], "scores": [NaN], "labels": [0]}]}', "NaN or infinite"),
    ({"frames": [frame(0.0, [(30, 10, 10, 40)])]}, "box 0 [30.0, 10.0, 10.0, 40.0] has a negative size"),
    ({"frames": [frame(0.0, [(10, 40, 30, 10)])]}, "negative size"),
    ({"frames": [frame(0.0, [GOOD_BOX], scores=[-0.1])]}, "negative score"),
    ({"frames": [frame(0.0, [GOOD_BOX, GOOD_BOX], labels=[1, "cat"])]}, "labels mix ints and class names"),
    ({"frames": [frame(0.0, [GOOD_BOX], labels=[-1])]}, "label 0 is -1"),
    ({"label_names": ["a", "b"], "frames": [frame(0.0, [GOOD_BOX], labels=[2])]}, "expected 0 <= label < 2"),
    ({"label_names": ["a", "b"], "frames": [frame(0.0, [GOOD_BOX], labels=["c"])]}, "'c' not in label_names"),
    ({"label_names": ["a", "a"], "frames": [frame(0.0, [GOOD_BOX], labels=["a"])]}, "label_names has duplicates"),
    ({"label_names": "a b", "frames": []}, "'label_names' must be a list of strings"),
    ({"frames": [frame(0.0, [(-1.5, 0, 10, 10)])]}, "outside the 100x80 frame by more than 1 px"),
    ({"frames": [frame(0.0, [GOOD_BOX]), frame(1.0, [(0, 0, 10, 81.5)])]}, "frame 1 (time 1): box 0"),
])
def test_json_validation_names_file_and_reason(tmp_path, obj, reason):
    with pytest.raises(DetectionError) as error:
        load(tmp_path, obj)
    assert reason in str(error.value)
    assert str(tmp_path / "dets" / "v.json") in str(error.value)


def test_boxes_within_a_pixel_of_the_frame_are_kept_unchanged(tmp_path):
    dets = load(tmp_path, {"frames": [frame(0.0, [(-1, -0.5, 101, 81)])]})
    np.testing.assert_array_equal(dets.frames[0].boxes, [[-1, -0.5, 101, 81]])
    # without a frame size no bounds check applies (the size is known only once decoded)
    dets = load(tmp_path, {"frames": [frame(0.0, [(0, 0, 500, 500)])]}, frame_size=None)
    assert dets.frames[0].boxes.shape == (1, 4)


def test_missing_key_fails_or_gives_empty(tmp_path):
    (tmp_path / "dets").mkdir()
    with pytest.raises(DetectionError, match=r"v\.json: no detections for video 'v' \(detections_missing: fail\)"):
        DetectionSource(tmp_path / "dets").load("v")
    empty = DetectionSource(tmp_path / "dets", missing="empty").load("v", frame_size=(10, 10))
    got = empty.at([0.0, 1 / 6, 5.0], default_tolerance(6.0))
    assert [d.boxes.shape for d in got] == [(0, 4)] * 3
    assert all(d.scores.shape == (0,) and d.labels.dtype == np.int64 for d in got)


def test_source_path_must_be_a_directory_or_hdf5(tmp_path):
    (tmp_path / "x.txt").write_text("")
    for path in (tmp_path / "absent", tmp_path / "x.txt"):
        with pytest.raises(FileNotFoundError, match="directory of <key>.json files or an HDF5 file"):
            DetectionSource(path)
    with pytest.raises(ValueError, match="missing: expected 'fail' or 'empty'"):
        DetectionSource(tmp_path, missing="skip")


def oracle(frame_times: np.ndarray, times: np.ndarray, tolerance: float) -> list[int]:
    """Brute force: every frame's distance, the smallest (earliest on ties) if within tolerance."""
    out = []
    for t in times:
        best = min(range(len(frame_times)), key=lambda f: (abs(frame_times[f] - t), f), default=-1)
        out.append(best if best >= 0 and abs(frame_times[best] - t) <= tolerance + 1e-9 else -1)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_nearest_frames_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    frame_times = np.unique(np.round(rng.uniform(0, 5, rng.integers(0, 30)), 2))
    times = np.round(rng.uniform(-0.5, 5.5, 50), 2)
    times = np.concatenate([times, frame_times, (frame_times[:-1] + frame_times[1:]) / 2])  # exact hits and ties
    tolerance = float(rng.choice([0.0, 0.05, default_tolerance(6.0), 0.4]))
    assert nearest_frames(frame_times, times, tolerance).tolist() == oracle(frame_times, times, tolerance)


def test_matching_takes_the_nearest_frame_and_never_invents(tmp_path):
    obj = {"frames": [frame(0.0, [GOOD_BOX], [0.9]), frame(0.5, []), frame(1.0, [(0, 0, 5, 5), GOOD_BOX], [0.2, 0.8])]}
    dets = load(tmp_path, obj)
    grid = np.arange(8) / 6  # 0, 1/6, ..., 7/6 s
    got = dets.at(grid, default_tolerance(6.0))  # tolerance 1/12 s
    assert [len(d.boxes) for d in got] == [1, 0, 0, 0, 0, 0, 2, 0]
    np.testing.assert_array_equal(got[0].boxes, [GOOD_BOX])
    # best first: the 0.8 box comes before the 0.2 one
    np.testing.assert_allclose(got[6].scores, [0.8, 0.2])
    np.testing.assert_array_equal(got[6].boxes, [GOOD_BOX, (0, 0, 5, 5)])
    with pytest.raises(ValueError, match="tolerance"):
        dets.at(grid, -1.0)


def test_label_names_vocabularies(tmp_path):
    boxes = [GOOD_BOX, GOOD_BOX]
    by_name = load(tmp_path, {"frames": [frame(0.0, boxes, labels=["red circle", "blue square"])]})
    assert by_name.label_names == ("blue square", "red circle")
    assert [by_name.label_names[c] for c in by_name.frames[0].labels] == ["red circle", "blue square"]
    own = load(tmp_path, {"label_names": ["x", "red circle"], "frames": [frame(0.0, boxes[:1], labels=["red circle"])]})
    assert own.label_names == ("x", "red circle") and own.frames[0].labels.tolist() == [1]
    raw = load(tmp_path, {"frames": [frame(0.0, boxes, labels=[7, 1599])]})
    assert raw.label_names == () and raw.frames[0].labels.tolist() == [7, 1599]
    vg = [f"vg class {i}" for i in range(1600)]
    named = load(tmp_path, {"frames": [frame(0.0, boxes, labels=[7, 1599])]}, class_names=vg)
    assert named.label_names == tuple(vg)
    assert [named.label_names[c] for c in named.frames[0].labels] == ["vg class 7", "vg class 1599"]
    coco = load(tmp_path, {"label_names": ["N/A", "cat", "N/A"], "frames": [frame(0.0, boxes[:1], labels=[1])]})
    assert coco.label_names == ("N/A", "cat", "N/A")  # int labels may index a vocabulary with repeats


def random_video(rng: np.random.Generator, width: int = 100, height: int = 80) -> dict:
    frames, t = [], 0.0
    for _ in range(rng.integers(0, 6)):
        t += float(rng.uniform(0.05, 0.5))
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, [width / 2, height / 2], (k, 2))
        wh = rng.uniform(0, [width / 2, height / 2], (k, 2))
        frames.append(frame(t, np.concatenate([xy, xy + wh], 1).tolist(), rng.uniform(0, 1, k).tolist(),
                            rng.integers(0, 3, k).tolist()))
    return {"label_names": ["cat", "dog", "red circle"], "frames": frames}


def test_hdf5_and_json_give_the_same_detections(tmp_path):
    rng = np.random.default_rng(0)
    keys = [f"video{i}" for i in range(6)]
    for key in keys:
        write(tmp_path / "dets", key, random_video(rng))
    from_json = DetectionSource(tmp_path / "dets")
    loaded = {key: from_json.load(key, frame_size=(100, 80)) for key in keys}
    h5 = write_detections_hdf5(tmp_path / "dets.h5", loaded)
    from_h5 = DetectionSource(h5)
    for key in keys:
        a, b = loaded[key], from_h5.load(key, frame_size=(100, 80))
        np.testing.assert_array_equal(a.times, b.times)
        assert a.label_names == b.label_names == ("cat", "dog", "red circle")
        assert len(a.frames) == len(b.frames)
        for fa, fb in zip(a.frames, b.frames):
            for name in ("boxes", "scores", "labels"):
                np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    # and back to JSON: the written file reloads to the same arrays
    (tmp_path / "again").mkdir()
    again = write_detections_json(tmp_path / "again" / "video0.json", loaded["video0"].times, loaded["video0"].frames,
                                  loaded["video0"].label_names)
    back = DetectionSource(again.parent).load("video0")
    for fa, fb in zip(loaded["video0"].frames, back.frames):
        np.testing.assert_array_equal(fa.boxes, fb.boxes)
        np.testing.assert_array_equal(fa.labels, fb.labels)


def hdf5_group(path: Path, **arrays) -> Path:
    base = {"times": np.array([0.0, 0.5]), "num_boxes": np.array([1, 0]),
            "boxes": np.array([[GOOD_BOX], [(0, 0, 0, 0)]], dtype=np.float32),
            "scores": np.array([[0.5], [0.0]], dtype=np.float32), "labels": np.array([[1], [0]])}
    with h5py.File(path, "w") as f:
        group = f.create_group("v")
        for name, value in {**base, **arrays}.items():
            if value is not None:
                group.create_dataset(name, data=value)
    return path


@pytest.mark.parametrize("arrays, reason", [
    ({"scores": None}, "missing dataset(s) scores"),
    ({"num_boxes": np.array([1])}, "expected times (F,) and num_boxes (F,)"),
    ({"boxes": np.zeros((2, 1, 3))}, "expected boxes (2, K, 4)"),
    ({"labels": np.zeros((2, 2), dtype=np.int64)}, "expected labels (2, 1) like boxes"),
    ({"labels": np.zeros((2, 1))}, "num_boxes and labels must be integers"),
    ({"num_boxes": np.array([2, 0])}, "frame 0: num_boxes 2 is not in 0..1"),
    ({"times": np.array([0.5, 0.5])}, "frame 1: expected 'time' > 0.5"),
    ({"boxes": np.array([[[0, 0, np.nan, 1]], [[0, 0, 0, 0]]])}, "NaN or infinite"),
    ({"boxes": np.array([[[0, 0, 200, 1]], [[0, 0, 0, 0]]])}, "outside the 100x80 frame"),
])
def test_hdf5_validation(tmp_path, arrays, reason):
    source = DetectionSource(hdf5_group(tmp_path / "d.h5", **arrays))
    with pytest.raises(DetectionError) as error:
        source.load("v", frame_size=(100, 80))
    assert reason in str(error.value) and f"{tmp_path / 'd.h5'}:/v" in str(error.value)


def test_hdf5_padding_rows_are_ignored_and_missing_key(tmp_path):
    source = DetectionSource(hdf5_group(tmp_path / "d.h5", boxes=np.array([[GOOD_BOX], [(np.nan,) * 4]])))
    dets = source.load("v", frame_size=(100, 80))
    assert [len(d.boxes) for d in dets.frames] == [1, 0]
    with pytest.raises(DetectionError, match=r"d\.h5:/w: no detections for video 'w'"):
        source.load("w")
    assert DetectionSource(tmp_path / "d.h5", missing="empty").load("w").times.shape == (0,)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DetectionError, match="unreadable HDF5"):
        DetectionSource(tmp_path / "bad.h5").load("v")


def test_digests_of_the_files_used(tmp_path):
    a = write(tmp_path / "dets", "a", {"frames": []})
    write(tmp_path / "dets", "b", {"frames": [frame(0.0)]})
    source = DetectionSource(tmp_path / "dets")
    assert source.digests(["a", "absent"]) == {"a.json": hashlib.sha256(a.read_bytes()).hexdigest()}
    described = source.describe(["a", "b"])
    assert described["format"] == "json" and sorted(described["sha256"]) == ["a.json", "b.json"]
    h5 = hdf5_group(tmp_path / "d.h5")
    assert DetectionSource(h5).digests(["v"]) == {"d.h5": hashlib.sha256(h5.read_bytes()).hexdigest()}
