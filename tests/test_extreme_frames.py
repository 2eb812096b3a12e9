"""Frames of extreme shapes: a thin strip is extracted, a huge canvas is refused before decoding."""

from __future__ import annotations

import torch

from conftest import tiny_config
from extract.geometry import pad_to_aspect
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from media import write_gif


def test_extreme_aspect_ratio_is_extracted(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_gif(videos / "strip.gif", [60, 90] * 3, size=(3000, 2))  # 2 px wide, 3000 px tall
    write_gif(videos / "band.gif", [60, 90] * 3, size=(2, 900))
    summary = run_pipeline(tiny_config("folder", tmp_path / "out", videos=videos, stages="appearance,objects,motion"))
    assert summary.failures == [] and summary.done == 2
    assert verify_output(tmp_path / "out") == []


def test_pad_to_aspect_pads_only_what_the_resize_would_zero():
    image = torch.rand(3, 1024, 1)
    padded = pad_to_aspect(image, max_size=192)
    assert padded.shape == (3, 1024, 11)  # 11 * 192 / 1024 >= 2 px after the detector's resize
    assert torch.equal(padded[..., :1], image) and not padded[..., 1:].any()
    normal = torch.rand(3, 72, 96)
    assert pad_to_aspect(normal, max_size=192) is normal
    assert pad_to_aspect(torch.rand(3, 2, 900), max_size=192).shape == (3, 10, 900)  # ceil(2 * 900 / 192)
