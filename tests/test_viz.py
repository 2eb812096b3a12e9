"""`extract viz` on a real run: readable frame sizes by any factor, titles above the boxes, scores on
the boxes, random weights written on the image, empty panels captioned, default output outside OUT."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import tiny_config
from extract.cli import app
from extract.config import RunConfig
from extract.models.detector import category_names
from extract.pipeline import run_pipeline
from extract.store import OutputDir, shard_path
from extract.video import decode
from extract.viz import HEADER_H, MAX_SIDE, MIN_SIDE, TITLE_H, WARNING, _colour, header, header_lines, panel, panel_origin, render
from media import write_gif


@pytest.fixture(scope="module")
def viz_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz")
    videos = root / "videos"
    videos.mkdir()
    write_gif(videos / "small.gif", [100] * 20, size=(56, 72))  # 2 s; an odd size: 320/72 is no whole factor
    out = root / "out"
    # Default linking: random weights score below the stop threshold, so no trajectory forms (N = 0).
    summary = run_pipeline(tiny_config("folder", out, videos=videos, stages="appearance,objects,trajectories"))
    assert summary.done == 1
    return out


def _stored(out, key):
    record = OutputDir(out).read_manifest()[key]
    f = h5py.File(out / "shards" / record["shard"], "r")
    config = RunConfig.model_validate_json(f.attrs["config"])
    return record, f, config, decode(record["path"], config.sampling, config.decode)


def _is_grey(pixels: np.ndarray) -> bool:
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def test_frames_resized_to_a_readable_size_by_any_factor():
    small = panel(np.zeros((50, 70, 3), np.uint8), [], "t")
    assert small.size == (MIN_SIDE, round(50 * MIN_SIDE / 70) + TITLE_H)
    large = panel(np.zeros((900, 1200, 3), np.uint8), [], "t")
    assert large.size == (MAX_SIDE, 480 + TITLE_H)


def test_title_bar_is_free_of_box_pixels():
    frame = np.full((40, 60, 3), 128, np.uint8)
    boxes = [(np.array([-5.0, -5.0, 70.0, 50.0]), "person 0.99", (255, 0, 0)), (np.array([0.0, 0.0, 30.0, 20.0]), "dog 0.50", (0, 255, 0))]
    pixels = np.asarray(panel(frame, boxes, "step 0 (grid 0)"))
    assert _is_grey(pixels[:TITLE_H]), "only the grey bar and the white title above the frame"
    assert not _is_grey(pixels[TITLE_H:]), "the boxes are drawn on the frame"


def test_sheet_shows_scores_titles_random_weights_and_size(viz_run, tmp_path):
    out = viz_run
    record, f, config, video = _stored(out, "small")
    names = category_names()
    with f:
        boxes = f[shard_path("detections/boxes", "small")][()] / np.array([*video.scale, *video.scale])
        labels, scores = f[shard_path("detections/labels", "small")][()], f[shard_path("detections/scores", "small")][()]
        counts = f[shard_path("detections/num_boxes", "small")][()]
    assert counts[0] > 0
    sheet = np.asarray(Image.open(render(out, "small", tmp_path / "s.png")).convert("RGB"))
    lines = header_lines("small", config, record["path"])
    assert any("random weights" in text for text, _ in lines)
    top = np.asarray(header(lines, sheet.shape[1]))
    np.testing.assert_array_equal(sheet[: top.shape[0]], top)
    assert (top == WARNING).all(axis=-1).any(), "the random-weights line is drawn in its warning colour"
    assert not (np.asarray(header(lines[:1], sheet.shape[1])) == WARNING).all(axis=-1).any()
    # Step 0's panel is the frame with each box labelled "class score".
    drawn = [(boxes[0, i], f"{names[labels[0, i]]} {scores[0, i]:.2f}", _colour(i)) for i in range(counts[0])]
    expected = np.asarray(panel(video.grid_frames(video.steps[:1])[0], drawn, "step 0 (grid 0)", empty="no detections"))
    h, w = expected.shape[:2]
    assert max(w, h - TITLE_H) >= MIN_SIDE
    cols = min(4, len(video.steps) + len(video.trajectory_steps))
    x, y = panel_origin(0, cols, w, h, top.shape[0])
    np.testing.assert_array_equal(sheet[y : y + h, x : x + w], expected)
    for i in range(cols):
        x, y = panel_origin(i, cols, w, h, top.shape[0])
        assert _is_grey(sheet[y : y + TITLE_H, x : x + w]), f"panel {i}: boxes reach into the title bar"


def test_empty_trajectory_panel_is_captioned(viz_run, tmp_path):
    out = viz_run
    record, f, config, video = _stored(out, "small")
    with f:
        assert f[shard_path("trajectories/boxes", "small")].shape[0] == 0
    sheet = np.asarray(Image.open(render(out, "small", tmp_path / "s.png")).convert("RGB"))
    frame = video.grid_frames(video.trajectory_steps[:1])[0]
    title = "traj frame 0 (0 s)"
    captioned = np.asarray(panel(frame, [], title, empty="no trajectories (N = 0)"))
    blank = np.asarray(panel(frame, [], title))
    assert (captioned != blank).any()
    h, w = captioned.shape[:2]
    n = len(video.steps)  # trajectory panels follow the step panels
    top = len(header_lines("small", config, record["path"])) * HEADER_H
    x, y = panel_origin(n, min(4, n + len(video.trajectory_steps)), w, h, top)
    np.testing.assert_array_equal(sheet[y : y + h, x : x + w], captioned)


def test_cli_default_output_is_not_inside_out(viz_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["viz", str(viz_run), "small"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "viz-small.png").is_file()
    assert not (viz_run / "viz").exists()
    assert not [p for p in viz_run.rglob("*.png")]
