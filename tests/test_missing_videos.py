"""A dataset whose videos are mostly missing (issue 18 item 3): none found stops before any work;
some missing fail alone, their lines naming the path; throughput counts only extracted videos."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import make_tgif, tiny_config
from extract.pipeline import RunSummary, run_pipeline
from extract.preflight import PreflightError


def test_no_video_found_stops_before_any_work(tmp_path):
    data = make_tgif(tmp_path / "data", {"a": None, "b": None, "c": None})
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "extract", "run", "--dataset", "tgif", "--data-root", str(data),
                           "--out", str(out), "--preset", "tiny", "--weights", "random", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"0 of 3 videos found under {data / 'gifs'}: check --videos" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    with pytest.raises(PreflightError, match="0 of 3 videos found"):  # the API stops the same way
        run_pipeline(tiny_config("tgif", out, data_root=data, videos=tmp_path / "elsewhere"))


def test_missing_videos_fail_naming_their_path_and_do_not_count_as_throughput(tmp_path, caplog):
    data = make_tgif(tmp_path / "data", {"here": [40, 70] * 2, "gone": None, "lost": None})
    with caplog.at_level("WARNING", logger="extract"):
        summary = run_pipeline(tiny_config("tgif", tmp_path / "out", data_root=data, stages="appearance",
                                           max_failures=5))
    assert "2 of 3 videos are missing under" in caplog.text
    assert summary.done == 1 and summary.failed == 2
    lines = summary.lines()
    assert f"failed gone ({data / 'gifs' / 'gone.gif'}): file not found" in lines
    assert summary.videos_per_s == pytest.approx(1 / summary.wall_s)
    assert "videos/s extracted" in lines[0]


def test_throughput_counts_done_videos_only():
    assert RunSummary(done=2, failed=8, skipped=5, wall_s=4.0).videos_per_s == 0.5
