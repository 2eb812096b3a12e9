"""Decoding and the 6 fps grid against PyAV, an independent decoder, with exact arithmetic."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from extract.sampling import SamplingConfig, grid_size, motion_windows, step_batches
from extract.video import DecodeConfig, DecodeError, decode, decoded_size, open_video, read_timestamps
from media import pattern, pyav_frames, write_gif, write_mp4, write_open_gop_cut, write_raw_h264, write_with_pts


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


def pattern_index(image: np.ndarray, count: int) -> int:
    """Which ``pattern(i)`` a (lossy) decoded frame shows."""
    h, w = image.shape[:2]
    return int(np.argmin([np.abs(image.astype(int) - pattern(i, h, w)).mean() for i in range(count)]))


def test_non_monotonic_timestamps_keep_decode_order_with_sorted_times(tmp_path):
    # Packet pts 0, 3, 2, 4, ... (1/25 s): decord reports the timestamps sorted and the frames in
    # decode order; the grid is the oracle's rule applied to exactly that.
    path = write_with_pts(tmp_path / "backwards.mkv", [0, 3, 2, 4, 5, 6, 7, 8, 9, 10], "matroska")
    pts, duration, images = pyav_frames(path)
    assert pts[1] > pts[2]  # the fixture really goes backwards
    expected = oracle_grid(sorted(pts), duration)
    video = decode(path)
    got = video.grid_frames(np.arange(video.num_grid))
    assert [pattern_index(f, len(images)) for f in got] == expected == [0, 3, 7]


def test_missing_timestamps_fall_back_to_frame_rate(tmp_path):
    path = write_with_pts(tmp_path / "no_pts.avi", [None] * 10, "avi")
    pts, duration = read_timestamps(path)
    np.testing.assert_allclose(pts, np.arange(10) / 25, atol=1e-6)
    assert duration == pytest.approx(0.4, abs=1e-6)
    video = decode(path)
    assert [pattern_index(f, 10) for f in video.grid_frames(np.arange(video.num_grid))] == oracle_grid(
        [Fraction(i, 25) for i in range(10)], Fraction(2, 5))


def test_stream_without_container_fails_with_reason(tmp_path):
    path = write_raw_h264(tmp_path / "raw.h264", 10)
    with pytest.raises(DecodeError, match=r"no frame count or timestamps in the file .*remux"):
        decode(path)


def test_parts_hold_exactly_the_frames_of_the_whole_video(tmp_path):
    path = write_mp4(tmp_path / "v.mp4", 30, num_frames=200, size=(48, 64))  # 40 grid frames, 10 steps
    whole = decode(path)
    video = open_video(path, config=DecodeConfig(part_steps=5, batch_steps=2))
    parts = list(video.parts())  # whole batches of 2 steps, at most 5 steps a part: 4 + 4 + 2
    assert [p.part for p in parts] == [(i, 3) for i in range(3)] and video.num_parts == 3
    assert [len(p.steps) for p in parts] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([p.steps for p in parts]), whole.steps)
    np.testing.assert_array_equal(np.concatenate([p.trajectory_steps for p in parts]), whole.trajectory_steps)
    for p in parts:
        used = np.unique(np.concatenate([p.steps, p.windows.ravel(), p.trajectory_steps]))
        np.testing.assert_array_equal(p.grid_frames(used), whole.grid_frames(used))
        assert len(p.frames) == len(used)  # nothing else held
    with pytest.raises(IndexError, match="not decoded in part"):
        parts[0].grid_frames(np.array([whole.num_grid - 1]))


def test_parts_read_out_of_order_are_the_same(tmp_path):
    path = write_mp4(tmp_path / "v.mp4", 25, num_frames=120, size=(48, 64))
    video = open_video(path, config=DecodeConfig(part_steps=2, batch_steps=2))
    in_order = [p.frames for p in video.parts()]
    np.testing.assert_array_equal(video.part(1).frames, in_order[1])  # seeks back to the start
    np.testing.assert_array_equal(video.part(0).frames, in_order[0])


def test_large_frames_are_downscaled_at_decode(tmp_path):
    path = write_gif(tmp_path / "wide.gif", [100] * 3, size=(300, 1200))
    video = decode(path, config=DecodeConfig(max_side=400))
    assert video.source_size == (1200, 300) and (video.width, video.height) == (400, 100)
    assert video.scale == (3.0, 3.0)
    full = decode(path, config=DecodeConfig(max_side=0))
    assert (full.width, full.height) == (1200, 300) and full.scale == (1.0, 1.0)
    # The decoder's own scaler: close to a box-filtered reference, not bit-equal to any.
    reference = full.frames[0].reshape(100, 3, 400, 3, 3).mean(axis=(1, 3))
    assert np.abs(video.frames[0].astype(float) - reference).mean() < 4
    assert decoded_size(4096, 4096, 1024) == (1024, 1024) and decoded_size(640, 480, 1024) == (640, 480)


def test_decord_before_torch_does_not_crash_models(tmp_path):
    # Reproduces a segfault: decoding first in a fresh process (decord imported before torch),
    # then the models on two threads.
    videos = tmp_path / "videos"
    videos.mkdir()
    write_gif(videos / "a.gif", [40, 70, 100] * 5, size=(72, 96))
    write_mp4(videos / "b.mp4", 25, num_frames=40, size=(64, 80))
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from extract.video import decode
decode(Path({str(videos / "a.gif")!r}))
from conftest import tiny_config
from extract.pipeline import run_pipeline
config = tiny_config("folder", Path({str(tmp_path / "out")!r}), videos=Path({str(videos)!r}), runtime={{"model_workers": 2}})
print("done", run_pipeline(config, progress=False).done)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["done", "2"]


def test_open_gop_cut_uses_the_timestamps_of_the_frames_decoded(tmp_path):
    # decord lists a timestamp for each leading B-frame of the cut GOP but never returns those
    # frames: taken as they are, every grid frame would be two frames late against PyAV.
    path = write_open_gop_cut(tmp_path / "cut.mp4")
    pts, duration, images = pyav_frames(path)
    assert [pattern_index(image, 60) for image in images[:3]] == [15, 16, 17]  # starts at the keyframe
    start = pts[0]  # decord's time origin is the first frame shown
    expected = oracle_grid([p - start for p in pts], duration - start)
    video = decode(path)
    assert len(video.pts) == len(images) and video.duration == pytest.approx(float(duration - start), abs=1e-3)
    got = video.grid_frames(np.arange(video.num_grid))
    assert len(got) == len(expected)
    for k, i in enumerate(expected):
        np.testing.assert_array_equal(got[k], images[i], err_msg=f"grid frame {k} should be decoded frame {i}")


def test_part_length_follows_the_memory_budget():
    config = DecodeConfig(part_mb=64, batch_steps=16, step_kb=0)
    # 64 MiB over 4 grid frames of 640 x 480 x 3 bytes a step: 18 steps.
    assert config.steps_per_part(640, 480, 4) == 64 * 2**20 // (4 * 640 * 480 * 3)
    assert DecodeConfig(part_mb=64, part_steps=10, step_kb=0).steps_per_part(640, 480, 4) == 10  # the cap
    assert DecodeConfig(part_mb=1).steps_per_part(4096, 4096, 8) == 1  # at least one step
    with pytest.raises(ValueError, match="part_mb"):
        DecodeConfig(part_mb=0)


def test_step_batches_are_full_then_powers_of_two():
    assert step_batches(23, 8) == [range(0, 8), range(8, 16), range(16, 20), range(20, 22), range(22, 23)]
    assert step_batches(32, 16) == [range(0, 16), range(16, 32)] and step_batches(0, 4) == []
    for n in range(40):
        batches = step_batches(n, 6)
        assert [i for b in batches for i in b] == list(range(n))
        assert all(len(b) == 6 or len(b) & (len(b) - 1) == 0 for b in batches)
