"""``--detections``: features on given boxes against torchvision's roi_align, the detector ->
export -> ``--detections`` round trip, per-video failures, the missing policy, and the weights
a run asks for when no detector is built."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from conftest import read_features, tiny_config, tiny_models
from extract.config import load_config
from extract.detections import DetectionSource, DetectionError
from extract.export import export_run_detections
from extract.features import build_extractor
from extract.features.build import required_weights, resolve_all_weights
from extract.features.detection import ModelDetections
from extract.features.external import ExternalDetections
from extract.models.appearance import build_appearance
from extract.models.detector import category_names
from extract.models.weights import WeightsUnavailable
from extract.pipeline import run_pipeline
from extract.video import DecodeConfig, decode
from media import write_mp4

CONFIG = tiny_models(runtime={"batch_size": 4})
NAMES = ["red circle", "blue square", "green triangle"]


def _frames01(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def _given(times: np.ndarray, width: int, height: int, seed: int = 0) -> dict:
    """Random boxes in the file's pixels at ``times``, scores in no particular order, named labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in times:
        k = int(rng.integers(1, 4))
        xy = rng.uniform(0, [width * 0.6, height * 0.6], size=(k, 2))
        wh = rng.uniform(4, [width * 0.4, height * 0.4], size=(k, 2))
        frames.append({"time": float(t), "boxes": np.concatenate([xy, xy + wh], 1).tolist(),
                       "scores": rng.uniform(0.1, 1.0, size=k).tolist(),
                       "labels": [NAMES[i] for i in rng.integers(0, 3, size=k)]})
    return {"label_names": NAMES, "frames": frames}


def test_features_on_given_boxes_equal_roi_align_on_those_boxes(tmp_path):
    path = write_mp4(tmp_path / "a.mp4", 30, num_frames=60, size=(80, 64))
    video = decode(path, config=DecodeConfig(max_side=48))  # downscaled: file pixels != decoded pixels
    width, height = video.source_size
    step_times = video.steps / video.sampling.fps
    # Every step but the second has detections, 0.03 s off its time (within half a grid step).
    given = _given(np.delete(step_times, 1) + 0.03, width, height)
    (tmp_path / "dets").mkdir()
    (tmp_path / "dets/a.json").write_text(json.dumps(given))
    source = ExternalDetections(DetectionSource(tmp_path / "dets"), {str(path): "a"}, tolerance=0.5 / 6)
    extractor = build_extractor(CONFIG, ["appearance", "objects"], detections=source)
    assert not any(isinstance(m, ModelDetections) for m in extractor.modules())
    arrays = extractor.finish(extractor([video])[0], video).arrays()

    torch.manual_seed(CONFIG.seed)  # the same tiny ResNet the extractor built
    resnet = build_appearance(arch=CONFIG.appearance.arch, weights=None).eval()
    size = CONFIG.appearance.size
    images = F.interpolate(_frames01(video.grid_frames(video.steps)), size=(size, size), mode="bilinear",
                           antialias=True, align_corners=False)
    assert arrays["detections/num_boxes"][1] == 0 and not arrays["image_features"][1].any()
    frames = iter(given["frames"])
    for t in range(len(video.steps)):
        if t == 1:
            continue
        frame = next(frames)
        order = np.argsort(-np.array(frame["scores"]), kind="stable")
        boxes = np.array(frame["boxes"], dtype=np.float32)[order]  # best first, file pixels
        k = len(boxes)
        assert arrays["detections/num_boxes"][t] == k
        np.testing.assert_allclose(arrays["detections/boxes"][t, :k], boxes, rtol=1e-5)
        np.testing.assert_array_equal(arrays["detections/labels"][t, :k], [NAMES.index(frame["labels"][i]) for i in order])
        with torch.inference_mode():
            _, c5 = resnet(images[t : t + 1])
        # file pixels -> C5 cells: the map covers the whole (resized) frame
        scale = torch.tensor([c5.shape[-1] / width, c5.shape[-2] / height] * 2)
        expected = roi_align(c5[:1], [torch.from_numpy(boxes) * scale], output_size=7, sampling_ratio=2,
                             aligned=True).mean(dim=(2, 3))
        # float rounding only: boxes reach the map through decoded pixels (divided, then multiplied by
        # the scale), and the pipeline's ResNet batch (the video's steps) blocks differently from this one frame
        np.testing.assert_allclose(arrays["image_features"][t, :k], expected.numpy(), rtol=1e-5, atol=1e-4)
        assert not arrays["image_features"][t, k:].any()
    assert arrays["detections/label_names"].tolist() == [n.encode() for n in NAMES]


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("byod")
    videos = root / "videos"
    videos.mkdir()
    write_mp4(videos / "v1.mp4", 25, num_frames=40, size=(64, 80))
    write_mp4(videos / "v2.mp4", 25, num_frames=30, size=(64, 80))
    out = root / "detector"
    run_pipeline(tiny_config("folder", out, videos=videos))
    return root, videos, out


def test_detector_export_detections_round_trip_gives_identical_object_features(detector_run, tmp_path):
    root, videos, out = detector_run
    export_run_detections(out, tmp_path / "dets", label_names=category_names())
    again = tmp_path / "again"
    summary = run_pipeline(tiny_config("folder", again, videos=videos, detections={"path": tmp_path / "dets"}))
    assert (summary.done, summary.failed) == (2, 0)
    want, got = read_features(out), read_features(again)
    for key in ("v1", "v2"):
        assert want[key]["detections/num_boxes"].sum() > 0
        for name in ("image_features", "spatial_features", "motion_objects", "detections/boxes", "detections/scores",
                     "detections/labels", "detections/num_boxes", "appearance", "motion"):
            np.testing.assert_array_equal(got[key][name], want[key][name], err_msg=f"{key} {name}")
        assert got[key]["detections/label_names"].tolist() == want[key]["detections/label_names"].tolist()
    run = json.loads((again / "run.json").read_text())
    assert "detector" not in run["weights"]  # not built, not asked for
    d = run["detections"]
    assert (d["path"], d["format"], d["missing"], d["tolerance_s"]) == (str(tmp_path / "dets"), "json", "fail", 0.5 / 6)
    assert sorted(d["sha256"]) == ["v1.json", "v2.json"] and all(len(h) == 64 for h in d["sha256"].values())


def test_a_missing_or_bad_file_fails_its_video_alone_and_empty_gives_no_boxes(detector_run, tmp_path):
    root, videos, out = detector_run
    dets = tmp_path / "dets"
    export_run_detections(out, dets, label_names=category_names())
    (dets / "v2.json").unlink()
    summary = run_pipeline(tiny_config("folder", tmp_path / "fail", videos=videos, max_failures=1,
                                       detections={"path": dets}))
    assert (summary.done, summary.failed) == (1, 1)
    (key, reason), = summary.failures
    assert key == "v2" and reason.startswith("detections: ") and "v2.json" in reason and "no detections" in reason

    summary = run_pipeline(tiny_config("folder", tmp_path / "empty", videos=videos,
                                       detections={"path": dets, "missing": "empty"}))
    assert (summary.done, summary.failed) == (2, 0)
    features = read_features(tmp_path / "empty")
    assert (features["v2"]["detections/num_boxes"] == 0).all() and not features["v2"]["image_features"].any()
    assert features["v1"]["detections/num_boxes"].sum() > 0

    (dets / "v2.json").write_text('{"frames": [{"time": 0, "boxes": [[0, 0, 500, 10]], "scores": [1], "labels": [1]}]}')
    summary = run_pipeline(tiny_config("folder", tmp_path / "outside", videos=videos, max_failures=1,
                                       detections={"path": dets}))
    (key, reason), = summary.failures
    assert key == "v2" and reason.startswith("detections: ") and "is outside the 80x64 frame" in reason


def test_with_detections_no_detector_weights_are_asked_for(tmp_path):
    weights = tmp_path / "weights"  # an empty weights folder: every needed file is reported missing
    weights.mkdir()
    config = tiny_models(weights=str(weights), stages=("appearance", "objects", "motion", "trajectories"))
    with pytest.raises(WeightsUnavailable, match="fasterrcnn"):
        resolve_all_weights(config, config.stages)
    dets = tmp_path / "dets"
    dets.mkdir()
    config = config.model_copy(update={"detections": config.detections.model_copy(update={"path": dets})})
    assert set(required_weights(config, config.stages)) == {"appearance", "motion"}
    with pytest.raises(WeightsUnavailable) as missing:
        resolve_all_weights(config, config.stages)
    assert "resnet50" in str(missing.value) and "I3D_8x8_R50" in str(missing.value)
    assert "fasterrcnn" not in str(missing.value)
    with pytest.raises(ValueError, match="ExternalDetections"):
        build_extractor(config.model_copy(update={"weights": "random"}), config.stages)


def test_detections_paths_resolve_against_data_root_in_yaml_and_cwd_on_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("demo-mc", overrides={"data_root": tmp_path / "mc"})
    assert config.detections.path == tmp_path / "mc/detections" and config.detections.missing == "fail"
    config = load_config("demo-mc", overrides={"data_root": "mc", "detections": {"missing": "empty"}})
    assert config.detections.path == tmp_path / "mc/detections" and config.detections.missing == "empty"
    config = load_config("folder", overrides={"videos": "v", "detections": {"path": "d.h5", "tolerance_s": 0.1}})
    assert config.detections.path == tmp_path / "d.h5" and config.detections.tolerance_s == 0.1
    with pytest.raises(ValueError, match="tolerance_s"):
        load_config("folder", overrides={"detections": {"path": "d", "tolerance_s": -1}})
    with pytest.raises(DetectionError, match="no detections"):
        DetectionSource(tmp_path).load("absent")


def test_link_accepts_class_names_as_labels(tmp_path):
    import subprocess
    import sys

    frames = [{"time": t, "boxes": [[0, 0, 10, 10], [40, 40, 50, 50]], "scores": [0.9, 0.8], "labels": ["cat", "dog"]}
              for t in (0.0, 0.5, 1.0)]
    (tmp_path / "d.json").write_text(json.dumps({"frames": frames}))
    result = subprocess.run([sys.executable, "-m", "extract", "link", str(tmp_path / "d.json"), "-o",
                             str(tmp_path / "t.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    trajs = json.loads((tmp_path / "t.json").read_text())["trajectories"]
    assert sorted((t["label"], t["label_name"], t["frames"]) for t in trajs) == [(0, "cat", [0, 1, 2]), (1, "dog", [0, 1, 2])]
