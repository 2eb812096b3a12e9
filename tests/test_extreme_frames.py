"""Frames of extreme shapes: a thin strip is extracted, a huge canvas is refused before decoding."""

from __future__ import annotations

import struct
import time

import pytest
import torch

from conftest import tiny_config
from extract.geometry import pad_to_aspect
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.video import DecodeConfig, DecodeError, open_video
from media import write_gif, write_mp4


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


def test_huge_gif_canvas_is_refused_before_decoding(tmp_path):
    # 725 bytes: a 16x16 GIF whose logical screen says 12000x12000. Decoded, it peaked at 4 GB
    # (ffmpeg builds the full canvas before max_side applies); refused, nothing is decoded.
    data = bytearray(write_gif(tmp_path / "small.gif", [50, 60, 70], size=(16, 16)).read_bytes())
    data[6:10] = struct.pack("<HH", 12000, 12000)
    (tmp_path / "huge.gif").write_bytes(bytes(data))
    start = time.perf_counter()
    with pytest.raises(DecodeError, match=r"GIF canvas 12000x12000 is over the decode budget of 40000000 pixels"):
        open_video(tmp_path / "huge.gif")
    assert time.perf_counter() - start < 5
    assert open_video(tmp_path / "small.gif").source_size == (16, 16)


def test_frame_size_budget_applies_to_any_video_and_is_configurable(tmp_path):
    path = write_mp4(tmp_path / "a.mp4", 25, num_frames=10, size=(64, 96))
    with pytest.raises(DecodeError, match=r"frame size 96x64 is over the decode budget of 6000 pixels"):
        open_video(path, config=DecodeConfig(max_pixels=6000))
    assert open_video(path, config=DecodeConfig(max_pixels=96 * 64)).source_size == (96, 64)
    with pytest.raises(ValueError, match="max_pixels"):
        DecodeConfig(max_pixels=-1)
