"""`extract export nextqa|masn` and the run-detections export: the 16-slot rule, splits, trajectory
padding, a NExT-QA-style loader script reading the files, and a real run exported end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import read_features, tiny_config
from extract.config import load_config
from extract.detections import DetectionSource
from extract.export import export_nextqa, export_run_detections
from extract.pipeline import run_pipeline
from extract.sampling import slot_steps
from extract.index_files import build_index
from extract.store import RUN_FILE, OutputDir, ShardSink, VideoResult
from media import write_mp4

# NExT-QA's loader style (dataloader/sample_loader.py): h5py, ids as str, feat rows by id.
LOADER = textwrap.dedent("""
    import sys, h5py
    with h5py.File(sys.argv[1], 'r') as fp:
        vids = fp['ids'].asstr()[()]
        feats = fp['feat']
        app_feats = {str(vid): feat for vid, feat in zip(vids, feats[()])}
    for vid in sorted(app_feats):
        f = app_feats[vid]
        print(vid, f.shape[0], f.shape[1], float(f[:, :2048].sum()), float(f[:, 2048:].sum()))
""")


def test_slot_rule():
    assert slot_steps(32).tolist() == list(range(1, 32, 2))  # centre of each pair
    assert slot_steps(16).tolist() == list(range(16))
    assert slot_steps(1).tolist() == [0] * 16
    assert slot_steps(5).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    for t in range(1, 200):
        s = slot_steps(t)
        assert len(s) == 16 and (np.diff(s) >= 0).all() and 0 <= s[0] and s[-1] < t
        if t < 16:
            assert set(s.tolist()) == set(range(t))  # every step, in order, none skipped
        else:
            centres = (np.arange(16) + 0.5) * t / 16  # the step containing each span's centre
            assert s.tolist() == np.floor(centres).astype(int).tolist()
    with pytest.raises(ValueError, match="num_steps"):
        slot_steps(0)


def fake_run(out: Path, dataset: str, videos: dict[str, dict], stages: str, data_root: Path | None = None) -> None:
    """An output directory written by the real store from given arrays (no models)."""
    config = load_config(dataset, overrides={"out": out, "stages": stages, "data_root": data_root})
    store = OutputDir(out)
    sink = ShardSink(store, {"config": config.model_dump_json()})
    sink.on_write_start()
    results = [VideoResult(key, f"/videos/{key}.mp4", features=arrays, info={"stages": list(config.stages)})
               for key, arrays in videos.items()]
    sink.on_write_complete(sink.write(results[:2]) + sink.write(results[2:]))
    build_index(store, dataset)
    (out / RUN_FILE).write_text(json.dumps({"config": config.model_dump(mode="json")}))


def video_arrays(rng, steps: int, trajectories: int) -> dict[str, np.ndarray]:
    return {
        "appearance": rng.standard_normal((steps, 2048)).astype(np.float32),
        "motion": rng.standard_normal((steps, 2048)).astype(np.float32),
        "trajectories/features": rng.standard_normal((trajectories, 2048)).astype(np.float32),
        "trajectories/labels": rng.integers(0, 90, trajectories),
        "trajectories/scores": rng.uniform(0, 1, trajectories).astype(np.float32),
        "trajectories/span": np.sort(rng.uniform(0, 1, (trajectories, 2)), 1).astype(np.float32),
        "trajectories/label_names": np.array([f"class {i}".encode() for i in range(trajectories)]),
    }


def test_folder_run_exports_one_all_file_with_slots_and_padded_trajectories(tmp_path):
    rng = np.random.default_rng(0)
    videos = {"a": video_arrays(rng, 40, 3), "b": video_arrays(rng, 5, 0), "c": video_arrays(rng, 16, 1)}
    fake_run(tmp_path / "out", "folder", videos, "appearance,motion,trajectories")
    report = export_nextqa(tmp_path / "out", tmp_path / "feats")
    app, traj = tmp_path / "feats/vid_feat/app_mot_all.h5", tmp_path / "feats/traj_feat/traj_all.h5"
    assert report.written == [app, traj]
    assert not list((tmp_path / "feats").rglob("*.tmp"))
    with h5py.File(app) as f:
        assert f["ids"].asstr()[()].tolist() == ["a", "b", "c"]
        assert f["feat"].shape == (3, 16, 4096) and f["feat"].dtype == np.float32
        for row, key in enumerate("abc"):
            s = slot_steps(len(videos[key]["appearance"]))
            np.testing.assert_array_equal(f["feat"][row, :, :2048], videos[key]["appearance"][s])
            np.testing.assert_array_equal(f["feat"][row, :, 2048:], videos[key]["motion"][s])
        assert f.attrs["source_out"] == str((tmp_path / "out").absolute())
        assert json.loads(f.attrs["config"])["dataset"] == "folder" and f.attrs["split"] == "all"
    with h5py.File(traj) as f:
        assert f["feat"].shape == (3, 3, 2048)
        assert f["mask"][()].tolist() == [[True] * 3, [False] * 3, [True, False, False]]
        np.testing.assert_array_equal(f["feat"][0], videos["a"]["trajectories/features"])
        np.testing.assert_array_equal(f["feat"][1], 0)
        np.testing.assert_array_equal(f["span"][2, :1], videos["c"]["trajectories/span"])
        assert f["labels"][2].tolist() == [int(videos["c"]["trajectories/labels"][0]), -1, -1]
        assert f["label_names"].asstr()[()].tolist() == [["class 0", "class 1", "class 2"], ["", "", ""],
                                                          ["class 0", "", ""]]
        assert f["scores"].dtype == np.float32 and f["scores"][1].tolist() == [0, 0, 0]
    printed = subprocess.run([sys.executable, "-c", LOADER, str(app)], capture_output=True, text=True, check=True)
    lines = printed.stdout.split("\n")
    assert [line.split()[:3] for line in lines if line] == [["a", "16", "4096"], ["b", "16", "4096"], ["c", "16", "4096"]]


def test_without_trajectories_no_traj_file_and_one_trajectory_slot(tmp_path):
    rng = np.random.default_rng(1)
    videos = {k: {n: v for n, v in video_arrays(rng, 3, 0).items() if not n.startswith("traj")} for k in "xy"}
    fake_run(tmp_path / "out", "folder", videos, "appearance,motion")
    report = export_nextqa(tmp_path / "out")
    assert report.written == [tmp_path / "out/nextqa/vid_feat/app_mot_all.h5"]
    fake_run(tmp_path / "only", "folder", {"x": {"appearance": videos["x"]["appearance"]}}, "appearance")
    with pytest.raises(ValueError, match="needs the appearance and motion stages"):
        export_nextqa(tmp_path / "only")
    with pytest.raises(FileNotFoundError, match="no run.json"):
        export_nextqa(tmp_path / "absent")


def write_nextqa(root: Path, splits: dict[str, list[str]]) -> None:
    for split, keys in splits.items():
        with (root / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "frame_count", "width", "height", "question", "answer", "qid", "type",
                             "a0", "a1", "a2", "a3", "a4"])
            for key in keys:
                writer.writerow([key, 40, 80, 64, "what ?", 0, 1, "DO", "a", "b", "c", "d", "e"])


@pytest.fixture(scope="module")
def nextqa_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("nextqa")
    (root / "videos").mkdir()
    write_mp4(root / "videos/100.mp4", 25, num_frames=40, size=(64, 80))
    write_mp4(root / "videos/200.mp4", 25, num_frames=30, size=(64, 80))
    write_nextqa(root, {"train": ["100"], "val": ["200"], "test": ["200", "300"]})  # 300: no video file
    out = root / "out"
    config = tiny_config("nextqa", out, data_root=root, stages="appearance,objects,motion,trajectories",
                         max_failures=1, linking={"min_score": 0.0})
    summary = run_pipeline(config)
    assert (summary.done, summary.failed) == (2, 1)
    return root, out


def test_nextqa_run_exports_one_file_per_split_and_reports_missing(nextqa_run, tmp_path):
    root, out = nextqa_run
    result = subprocess.run([sys.executable, "-m", "extract", "export", "nextqa", str(out), "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test: 1 of 2 videos have no features (not exported): 300" in result.stdout
    features = read_features(out)
    for split, keys in (("train", ["100"]), ("val", ["200"]), ("test", ["200"])):
        with h5py.File(tmp_path / f"vid_feat/app_mot_{split}.h5") as f:
            assert f["ids"].asstr()[()].tolist() == keys
            s = slot_steps(len(features[keys[0]]["appearance"]))
            np.testing.assert_array_equal(f["feat"][0, :, :2048], features[keys[0]]["appearance"][s])
            np.testing.assert_array_equal(f["feat"][0, :, 2048:], features[keys[0]]["motion"][s])
        with h5py.File(tmp_path / f"traj_feat/traj_{split}.h5") as f:
            n = len(features[keys[0]]["trajectories/labels"])
            assert f["mask"][0].sum() == n and f["feat"].shape[1] == max(1, n)
            assert all(name for name in f["label_names"].asstr()[0][:n])  # the detector's class names


def test_export_help_lists_both_and_masn_rewrites_the_index(nextqa_run):
    _, out = nextqa_run
    help_text = subprocess.run([sys.executable, "-m", "extract", "export", "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "nextqa" in help_text and "masn" in help_text
    index = out / "masn/feat_r6_vsync2/res152_avgpool.hdf5"
    index.unlink()
    result = subprocess.run([sys.executable, "-m", "extract", "export", "masn", str(out)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    with h5py.File(index) as f:
        assert sorted(f) == ["100", "200"]


def test_run_detections_export_reloads_as_detections(nextqa_run, tmp_path):
    _, out = nextqa_run
    written = export_run_detections(out, tmp_path / "dets")
    assert sorted(written) == ["100", "200"]
    features = read_features(out)
    source = DetectionSource(tmp_path / "dets")
    for key in written:
        dets = source.load(key, frame_size=(80, 64))
        stored = features[key]
        steps = len(stored["detections/num_boxes"])
        np.testing.assert_allclose(dets.times, np.arange(steps) * 4 / 6)
        for t, got in enumerate(dets.at(np.arange(steps) * 4 / 6, 1 / 12)):
            k = stored["detections/num_boxes"][t]
            np.testing.assert_array_equal(got.boxes, stored["detections/boxes"][t, :k])
            np.testing.assert_array_equal(got.scores, stored["detections/scores"][t, :k])
            np.testing.assert_array_equal(got.labels, stored["detections/labels"][t, :k])


def test_export_detections_command_names_the_labels(nextqa_run, tmp_path):
    _, out = nextqa_run
    result = subprocess.run([sys.executable, "-m", "extract", "export", "detections", str(out), "--out",
                             str(tmp_path / "dets")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 videos" in result.stdout
    dets = DetectionSource(tmp_path / "dets").load("100")
    from extract.models.detector import category_names

    assert dets.label_names == tuple(category_names())
