"""The synthetic NExT-QA-format demo-mc: determinism, layout, answers recomputed from the scene
and from the decoded pixels, ground-truth boxes against the drawn shapes, detection noise."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from extract.config import load_config
from extract.datasets import AnnotationError, generate_demo_mc, load_dataset
from extract.datasets.demo import COLORS
from extract.datasets.demo_mc import ACTIONS, COUNTS, FPS, plan
from extract.datasets.nextqa import COLUMNS
from extract.detections import DetectionSource
from media import pyav_frames
from test_demo import shape_name

SEED, NUM = 3, 8


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mc") / "clean"
    generate_demo_mc(root, num_videos=NUM, seed=SEED, miss_rate=0, jitter_px=0, flip_rate=0)
    return root


@pytest.fixture(scope="module")
def pixels(clean_root) -> dict[str, list[np.ndarray]]:
    """Every frame of every video, decoded by PyAV (the oracle of what the files hold)."""
    return {scene.key: pyav_frames(clean_root / "videos" / f"{scene.key}.mp4")[2] for scene in plan(NUM, SEED)}


def read_rows(root: Path) -> dict[str, list[dict]]:
    rows = {}
    for split in ("train", "val", "test"):
        with (root / f"{split}.csv").open(newline="") as f:
            reader = csv.DictReader(f)
            assert tuple(reader.fieldnames) == COLUMNS
            rows[split] = list(reader)
    return rows


def colour_masks(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Saturated pixels (the backgrounds are grey) by nearest shape colour."""
    saturated = frame.max(axis=2).astype(int) - frame.min(axis=2) > 80
    names = sorted(COLORS)
    palette = np.array([COLORS[n] for n in names], dtype=float)
    nearest = np.argmin(((frame[:, :, None, :].astype(float) - palette) ** 2).sum(-1), axis=-1)
    return {n: saturated & (nearest == i) for i, n in enumerate(names) if (saturated & (nearest == i)).any()}


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def isolated(masks: dict[str, np.ndarray], colour: str) -> bool:
    """Whether a shape's pixels are whole: clear of the frame border and of the other shapes' boxes."""
    x1, y1, x2, y2 = bbox(masks[colour])
    height, width = masks[colour].shape
    if x1 == 0 or y1 == 0 or x2 == width or y2 == height:
        return False
    for other, mask in masks.items():
        a1, b1, a2, b2 = bbox(mask)
        if other != colour and a1 <= x2 + 1 and x1 <= a2 + 1 and b1 <= y2 + 1 and y1 <= b2 + 1:
            return False
    return True


def region_of(x: float, y: float, width: int, height: int) -> str:
    if abs(x - width / 2) < width / 6 and abs(y - height / 2) < height / 6:
        return "in the middle"
    return f"at the {'top' if y < height / 2 else 'bottom'} {'left' if x < width / 2 else 'right'}"


def answer(row: dict) -> str:
    return row[f"a{row['answer']}"]


def test_same_seed_same_bytes(tmp_path, clean_root):
    generate_demo_mc(tmp_path / "again", num_videos=NUM, seed=SEED, miss_rate=0, jitter_px=0, flip_rate=0)
    files = sorted(p.relative_to(clean_root) for p in clean_root.rglob("*") if p.is_file())
    assert len(files) == 1 + 3 + 2 * NUM
    assert all((clean_root / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)
    generate_demo_mc(tmp_path / "other", num_videos=NUM, seed=SEED + 1)
    assert (tmp_path / "other/videos/mc0000.mp4").read_bytes() != (clean_root / "videos/mc0000.mp4").read_bytes()


def test_layout_loads_as_nextqa(clean_root):
    dataset = load_dataset("demo-mc", clean_root)
    assert [v.key for v in dataset.videos] == [f"mc{i:04d}" for i in range(NUM)]
    assert all(v.path.is_file() and v.path.suffix == ".mp4" for v in dataset.videos)
    questions = dataset.questions()
    assert len(questions) == 7 * NUM
    assert {q.task for q in questions} == {"TN", "TC", "CW", "CH", "DC", "DL", "DO"}
    assert {q.split for q in questions} == {"train", "val", "test"}
    assert all(len(set(q.candidates)) == 5 and q.answer in "01234" for q in questions)
    with pytest.raises(ValueError, match="videos_dir"):
        load_dataset("demo-mc", clean_root, videos_dir=clean_root)
    assert load_config("demo-mc").stages == ("appearance", "objects", "motion", "trajectories")


def test_generated_on_first_use_and_version_checked(tmp_path):
    root = tmp_path / "mc"
    dataset = load_dataset("demo-mc", root)  # the default: 30 videos, seed 0, noisy detections
    marker = root / "demo_mc.json"
    assert json.loads(marker.read_text()) == {"version": 1, "num_videos": 30, "seed": 0, "miss_rate": 0.1,
                                              "jitter_px": 1.0, "flip_rate": 0.05}
    assert len(dataset.videos) == 30 and len(list((root / "detections").glob("*.json"))) == 30
    source = DetectionSource(root / "detections")
    for video in dataset.videos:  # the noisy boxes pass validation against their frame
        source.load(video.key, frame_size=(video.meta["width"], video.meta["height"]))
    stamp = marker.stat().st_mtime_ns
    assert load_dataset("demo-mc", root).questions() == dataset.questions()
    assert marker.stat().st_mtime_ns == stamp  # not regenerated
    marker.write_text(json.dumps({"version": 0}))
    with pytest.raises(AnnotationError, match="generator version 0"):
        load_dataset("demo-mc", root)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("mine")
    with pytest.raises(AnnotationError, match="not an empty directory"):
        generate_demo_mc(tmp_path / "foreign", num_videos=1)


def test_answers_follow_from_the_scene(clean_root):
    rows = {(r["video"], r["type"]): r for split in read_rows(clean_root).values() for r in split}
    for scene in plan(NUM, SEED):
        names = [t.name for t in scene.tracks]
        subject = scene.tracks[0]
        start, turn, end = (subject.centre(t) for t in (0.0, scene.tau, scene.duration))

        def action(a, b):
            dx, dy = b[0] - a[0], b[1] - a[1]
            if math.hypot(dx, dy) < 1:
                return "stay still"
            return ("move right" if dx > 0 else "move left") if abs(dx) > abs(dy) else ("move down" if dy > 0 else "move up")

        assert answer(rows[scene.key, "TC"]) == action(start, turn)
        assert answer(rows[scene.key, "TN"]) == action(turn, end)
        assert action(start, turn) != action(turn, end)
        assert set(rows[scene.key, "TN"][f"a{i}"] for i in range(5)) == set(ACTIONS)
        assert answer(rows[scene.key, "DC"]) == COUNTS[len(names) - 1]
        assert answer(rows[scene.key, "DO"]) == next(t.name for t in scene.tracks if t.appear > 0)
        times = scene.times()
        gone = {t.name: max(i for i, x in enumerate(times) if t.box(x, scene.width, scene.height)) for t in scene.tracks}
        left = [n for n, last in gone.items() if last < len(times) - 1]
        assert left == [answer(rows[scene.key, "CH"])]
        speeds = {}
        for t in scene.tracks:  # frame-to-frame centre displacement while any of it is in view
            seen = [x for x in times if t.box(x, scene.width, scene.height)]
            steps = [math.dist(t.centre(a), t.centre(b)) for a, b in zip(seen, seen[1:])]
            speeds[t.name] = sum(steps) / (seen[-1] - seen[0])
        ranked = sorted(speeds, key=speeds.get, reverse=True)
        assert answer(rows[scene.key, "CW"]) == ranked[0] and speeds[ranked[0]] >= 1.3 * speeds[ranked[1]]


def test_answers_follow_from_the_pixels(clean_root, pixels):
    actions_checked = 0
    rows = {(r["video"], r["type"]): r for split in read_rows(clean_root).values() for r in split}
    for scene in plan(NUM, SEED):
        frames = pixels[scene.key]
        assert len(frames) == scene.num_frames and frames[0].shape == (scene.height, scene.width, 3)
        masks = [colour_masks(f) for f in frames]
        colours = set().union(*masks)
        assert answer(rows[scene.key, "DC"]) == COUNTS[len(colours) - 1]
        newcomer = [c for c in colours if c not in masks[0]]
        assert len(newcomer) == 1 and answer(rows[scene.key, "DO"]).split()[0] == newcomer[0]
        first = next(i for i, m in enumerate(masks) if newcomer[0] in m)
        assert first == round(scene.tau * FPS)
        appeared = masks[first]
        assert isolated(appeared, newcomer[0])  # whole and clear of the others as it appears
        assert shape_name(appeared[newcomer[0]]) == answer(rows[scene.key, "DO"]).split()[1]
        vanished = [c for c in colours if c not in masks[-1]]
        assert [c for c in vanished] == [answer(rows[scene.key, "CH"]).split()[0]]
        target = rows[scene.key, "DL"]["question"].split()[3]  # "where is the <colour> <shape> at the end ?"
        assert isolated(masks[-1], target)
        ys, xs = np.nonzero(masks[-1][target])
        assert region_of(xs.mean() + 0.5, ys.mean() + 0.5, scene.width, scene.height) == answer(rows[scene.key, "DL"])
        subject = rows[scene.key, "TN"]["question"].split()[3]
        turn = round(scene.tau * FPS)

        def centroid(i):
            ys, xs = np.nonzero(masks[i][subject])
            return np.array([xs.mean(), ys.mean()])

        for (a, b), row in (((0, turn), rows[scene.key, "TC"]), ((turn, scene.num_frames - 1), rows[scene.key, "TN"])):
            clear = [i for i in range(a, b + 1) if isolated(masks[i], subject)]  # not hidden in part
            if not clear or clear[-1] - clear[0] < (b - a) / 2:
                continue
            dx, dy = centroid(clear[-1]) - centroid(clear[0])
            ex, ey = ACTIONS[answer(row)]
            if (ex, ey) == (0, 0):
                assert math.hypot(dx, dy) < 1
            else:
                assert dx * ex + dy * ey > 8 and abs(dx * ey - dy * ex) < 1.5
            actions_checked += 1
    assert actions_checked >= NUM


def test_ground_truth_boxes_match_the_drawn_pixels(clean_root, pixels):
    checked = 0
    for scene in plan(NUM, SEED):
        source = DetectionSource(clean_root / "detections")
        dets = source.load(scene.key, frame_size=(scene.width, scene.height))
        np.testing.assert_allclose(dets.times, np.arange(scene.num_frames) / FPS)
        vocabulary = dets.label_names
        for i, (frame, found) in enumerate(zip(pixels[scene.key], dets.frames)):
            masks = colour_masks(frame)
            named = {vocabulary[c].split()[0]: box for c, box in zip(found.labels, found.boxes)}
            assert set(named) == set(masks)  # a box for every shape in view, none for absent ones
            for colour, box in named.items():
                others = [b for c, b in named.items() if c != colour]
                if any(b[0] < box[2] + 1 and box[0] < b[2] + 1 and b[1] < box[3] + 1 and box[1] < b[3] + 1 for b in others):
                    continue  # overlapping shapes hide each other's pixels
                assert np.array_equal(bbox(masks[colour]), box), (scene.key, i, colour, bbox(masks[colour]), box)
                checked += 1
    assert checked > 500


def test_detection_noise_is_seeded_and_bounded(tmp_path, clean_root):
    generate_demo_mc(tmp_path / "noisy", num_videos=NUM, seed=SEED, miss_rate=0.2, jitter_px=2.0, flip_rate=0.1)
    clean, noisy = DetectionSource(clean_root / "detections"), DetectionSource(tmp_path / "noisy" / "detections")
    kept = total = flipped = 0
    for scene in plan(NUM, SEED):
        a, b = clean.load(scene.key), noisy.load(scene.key, frame_size=(scene.width, scene.height))
        for fa, fb in zip(a.frames, b.frames):
            total += len(fa.boxes)
            kept += len(fb.boxes)
            for box, label in zip(fb.boxes, fb.labels):
                distance = np.abs(fa.boxes - box).max(axis=1)
                assert distance.min() <= 2.0 + 1e-3  # jittered from one of the true boxes
                true = [a.label_names[c] for c in fa.labels[distance <= 2.0 + 1e-3]]
                flipped += b.label_names[label] not in true
    assert 0.7 < kept / total < 0.9
    assert 0.03 < flipped / kept < 0.2
    assert (tmp_path / "noisy/videos/mc0000.mp4").read_bytes() == (clean_root / "videos/mc0000.mp4").read_bytes()


def test_extract_and_export_end_to_end(tmp_path):
    """demo-mc through `extract run` (all four stages, tiny, random weights) and `extract export nextqa`."""
    import h5py

    from extract.export import export_nextqa
    from extract.pipeline import run_pipeline

    root = tmp_path / "data"
    generate_demo_mc(root, num_videos=2, seed=SEED)
    config = load_config("demo-mc", overrides={"data_root": root, "out": tmp_path / "out",
                                                "runtime": {"device": "cpu", "batch_size": 8}})
    assert run_pipeline(config).done == 2
    report = export_nextqa(tmp_path / "out")
    splits = {q.split: q.key for q in load_dataset("demo-mc", root).questions()}
    assert sorted(p.name for p in report.written) == sorted(
        [f"app_mot_{s}.h5" for s in splits] + [f"traj_{s}.h5" for s in splits])
    for split, key in splits.items():
        with h5py.File(tmp_path / f"out/nextqa/vid_feat/app_mot_{split}.h5") as f:
            assert f["ids"].asstr()[()].tolist() == [key] and f["feat"].shape == (1, 16, 4096)
