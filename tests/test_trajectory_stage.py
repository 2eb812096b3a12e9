"""The trajectories stage in the pipeline, `extract viz` and `extract link` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import roi_align

from conftest import tiny_config
from extract.features import build_extractor
from extract.pipeline import run_pipeline
from extract.sampling import step_batches
from extract.video import decode
from extract.viz import render
from media import write_gif, write_mp4

STAGES = "appearance,objects,motion,trajectories"


@pytest.fixture(scope="module")
def traj_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("traj")
    videos = root / "videos"
    videos.mkdir()
    write_gif(videos / "long.gif", [100] * 35, size=(80, 96))  # 3.5 s: trajectory frames at 0, 1, 2, 3 s
    write_mp4(videos / "clip.mp4", 25, num_frames=60, size=(64, 96))
    write_gif(videos / "single.gif", [100], size=(64, 64))
    out = root / "out"
    # Random weights score far below the default stop threshold; 0 lets trajectories form.
    config = tiny_config("folder", out, videos=videos, stages=STAGES, linking={"min_score": 0.0})
    summary = run_pipeline(config)
    assert summary.done == 3
    return config, out, videos


def test_trajectory_index_opens_elsewhere_and_is_well_formed(traj_run, tmp_path, monkeypatch):
    config, out, videos = traj_run
    monkeypatch.chdir(tmp_path)
    with h5py.File(out / "trajectories.h5", "r") as f:
        assert sorted(f) == ["clip", "long", "single"]
        for key in f:
            video = decode(next(videos.glob(f"{key}.*")))
            g = f[key]
            n, frames = g["features"].shape[0], len(video.trajectory_steps)
            assert g["features"].shape == (n, 2048) and g["labels"].shape == (n,) and g["scores"].shape == (n,)
            assert g["boxes"].shape == (n, frames, 4) and g["span"].shape == (n, 2)
            np.testing.assert_allclose(g["frame_times"][()], np.arange(frames), atol=1e-6)
            span = g["span"][()]
            assert ((0 <= span) & (span <= 1)).all() and (span[:, 0] < span[:, 1]).all()
            present = ~np.isnan(g["boxes"][()]).any(axis=2)  # [N, F]
            assert present.any(axis=1).all(), "every trajectory has at least one box"
            assert len(g["label_names"]) == n
        assert f["long"]["features"].shape[0] > 0
        assert f["single"]["boxes"].shape[1] == 1


def test_trajectory_features_are_mean_roi_features_of_their_boxes(traj_run):
    config, out, videos = traj_run
    extractor = build_extractor(config, ["appearance"])
    size = config.appearance.size
    video = decode(videos / "long.gif")
    frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255
    images = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False).contiguous()
    # The pipeline's batches: windows of the steps (full, then powers of two), each with the
    # trajectory frames in its grid span, each distinct decoded frame once, in decode order.
    windows = step_batches(len(video.steps), config.runtime.batch_size)
    starts = [video.steps[w.start] for w in windows] + [video.num_grid]
    c5_of = {}
    for i, w in enumerate(windows):
        traj = video.trajectory_steps[(video.trajectory_steps >= starts[i]) & (video.trajectory_steps < starts[i + 1])]
        ids = np.unique(video.grid[np.concatenate([video.steps[w.start : w.stop], traj])])
        with torch.inference_mode():
            _, c5 = extractor.appearance(images[ids])
        c5_of.update({int(g): c5[int(np.searchsorted(ids, video.grid[g]))][None] for g in traj})
    with h5py.File(out / "trajectories.h5", "r") as f:
        boxes, features = f["long"]["boxes"][()], f["long"]["features"][()]
    scale = torch.tensor([size / video.width, size / video.height] * 2)
    for n in range(len(boxes)):
        pooled = []
        for j in np.flatnonzero(~np.isnan(boxes[n]).any(axis=1)):
            c5 = c5_of[int(video.trajectory_steps[j])]
            box = torch.from_numpy(boxes[n, j : j + 1]) * scale * (c5.shape[-1] / size)
            pooled.append(roi_align(c5, [box], output_size=7, sampling_ratio=2, aligned=True).mean(dim=(2, 3))[0])
        np.testing.assert_allclose(features[n], torch.stack(pooled).mean(0).numpy(), atol=1e-5)


def test_viz_draws_a_contact_sheet_and_a_gif(traj_run, tmp_path):
    _, out, _ = traj_run
    png = render(out, "long", tmp_path / "long.png")
    with Image.open(png) as im:
        assert im.width > 0 and im.height > 0
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    gif = render(out, "clip", tmp_path / "clip.gif")
    video = decode(next(p for p in (out.parent / "videos").iterdir() if p.stem == "clip"))
    with Image.open(gif) as im:
        assert im.n_frames == len(video.steps) + len(video.trajectory_steps)
    with pytest.raises(KeyError, match="no done video"):
        render(out, "nope", tmp_path / "x.png")


def test_link_command_on_user_detections(tmp_path):
    detections = {
        "frames": [
            {"time": 0.0, "boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "scores": [0.9, 0.3], "labels": [1, 2]},
            {"time": 1.0, "boxes": [], "scores": [], "labels": []},
            {"time": 2.0, "boxes": [[1, 1, 11, 11]], "scores": [0.8], "labels": [3]},
        ]
    }
    src, dst = tmp_path / "dets.json", tmp_path / "traj.json"
    src.write_text(json.dumps(detections))

    def link(*options: str) -> list[dict]:
        proc = subprocess.run([sys.executable, "-m", "extract", "link", str(src), "-o", str(dst), *options],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(dst.read_text())["trajectories"]

    bridged = link("--max-gap", "1", "--class-agnostic")
    assert bridged[0]["frames"] == [0, 2] and bridged[0]["boxes"] == [0, 0] and bridged[0]["label"] == 1
    assert bridged[0]["score"] == pytest.approx(0.85)
    split = link("--max-gap", "0", "--class-aware", "--rescore", "max", "--min-score", "0")
    assert sorted(t["frames"] for t in split) == [[0], [0], [2]]
    assert link("--top-n", "1", "--max-gap", "0")[0]["frames"] == [0]
    assert link("--min-length", "2", "--max-gap", "1") == [bridged[0]]
    src.write_text(json.dumps({"frames": [{"time": 0, "boxes": [[0, 0, 1]], "scores": [1], "labels": [0]}]}))
    proc = subprocess.run([sys.executable, "-m", "extract", "link", str(src), "-o", str(dst)], capture_output=True, text=True)
    assert proc.returncode == 2 and "frame 0" in proc.stderr
