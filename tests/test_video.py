"""Decoding and the 6 fps grid against PyAV, an independent decoder, with exact arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from extract.sampling import SamplingConfig, grid_size, motion_windows
from extract.video import DecodeError, decode, read_timestamps
from media import pyav_frames, write_gif, write_mp4


def oracle_grid(pts: list[Fraction], duration: Fraction, fps: int = 6) -> list[int]:
    """DESIGN.md's rule by brute force in rationals: last frame with pts <= k/fps, else frame 0."""
    chosen, k = [], 0
    while Fraction(k, fps) < duration:
        t = Fraction(k, fps)
        due = [i for i, p in enumerate(pts) if p <= t]
        chosen.append(due[-1] if due else 0)
        k += 1
    return chosen


def assert_matches_oracle(path) -> None:
    pts, duration, images = pyav_frames(path)
    expected = oracle_grid(pts, duration)
    video = decode(path)
    assert video.num_grid == len(expected) == math.ceil(duration * 6)
    assert len(video.steps) == math.ceil(len(expected) / 4)
    assert abs(video.duration - float(duration)) < 1e-3
    got = video.grid_frames(np.arange(video.num_grid))
    for k, i in enumerate(expected):
        np.testing.assert_array_equal(got[k], images[i], err_msg=f"grid frame {k} should be decoded frame {i}")


@pytest.mark.parametrize(
    "delays",
    [
        [40, 70, 100, 40, 70, 100, 250, 30],  # unequal delays, some shorter than a grid interval
        [500, 20, 20, 20, 300],  # long holds: one frame serves several grid times
        [100] * 12,  # 10 fps
        [160, 170] * 4,  # delays straddling 1/6 s
    ],
)
def test_gif_grid_matches_pyav(tmp_path, delays):
    assert_matches_oracle(write_gif(tmp_path / "v.gif", delays))


def test_narrow_gif_decodes_correctly(tmp_path):
    # decord2 folds row padding into the channel axis for narrow frames; we undo that.
    assert_matches_oracle(write_gif(tmp_path / "narrow.gif", [50, 90, 130], size=(40, 24)))


@pytest.mark.parametrize("fps", [25, 29.97, 30])
def test_mp4_grid_matches_pyav(tmp_path, fps):
    assert_matches_oracle(write_mp4(tmp_path / f"v{fps}.mp4", fps, num_frames=53))


def test_one_frame_gif_has_one_step(tmp_path):
    video = decode(write_gif(tmp_path / "one.gif", [100]))
    assert video.num_grid == 1 and len(video.steps) == 1
    assert video.windows.tolist() == [[0] * 8]


def test_grid_size_guards_float_error():
    assert grid_size(2.0, 6) == 12
    assert grid_size(0.1 * 3, 6) == 2  # 0.30000000000000004 s
    assert grid_size(1 / 6, 6) == 1
    assert grid_size(1 / 6 + 1e-6, 6) == 2


def test_motion_windows_clamp_at_both_ends():
    w = motion_windows(np.array([0, 4, 8]), n_grid=10, window=8)
    assert w.tolist() == [[0, 0, 0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7], [4, 5, 6, 7, 8, 9, 9, 9]]


def test_custom_sampling_config(tmp_path):
    path = write_mp4(tmp_path / "v.mp4", 30, num_frames=60)
    video = decode(path, SamplingConfig(fps=3, stride=2, window=4, trajectory_fps=1))
    assert video.num_grid == 6 and video.steps.tolist() == [0, 2, 4]
    assert video.trajectory_steps.tolist() == [0, 3]


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("missing.mp4", None, "file not found"),
        ("empty.mp4", b"", "empty file"),
        ("text.gif", b"not a gif\n", "not a GIF"),
        ("text.mp4", b"not a video at all\n" * 10, "cannot open video"),
    ],
)
def test_bad_inputs_raise_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason) as info:
        decode(path)
    assert info.value.path == str(path)


def test_truncated_inputs_raise(tmp_path):
    mp4 = write_mp4(tmp_path / "full.mp4", 25, num_frames=50)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(DecodeError, match="cannot open video"):
        decode(cut)
    gif = write_gif(tmp_path / "full.gif", [50] * 10, size=(120, 160))
    cut_gif = tmp_path / "cut.gif"
    cut_gif.write_bytes(gif.read_bytes()[: gif.stat().st_size // 2])
    with pytest.raises(DecodeError, match="truncated GIF"):
        decode(cut_gif)


def test_timestamps_of_gif_use_delays(tmp_path):
    pts, duration = read_timestamps(write_gif(tmp_path / "v.gif", [40, 70, 100]))
    np.testing.assert_allclose(pts, [0.0, 0.04, 0.11], atol=1e-6)
    assert duration == pytest.approx(0.21, abs=1e-6)
