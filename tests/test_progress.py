"""Live progress moves per video, not per shard, with elapsed time and an ETA (issue 18 item 4)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

from conftest import make_tgif
from extract.progress import Reporter


def test_log_moves_per_video_before_the_first_shard_commits(tmp_path):
    data = make_tgif(tmp_path / "data", {f"{i}": [40, 70] * 2 for i in range(8)})
    config = tmp_path / "run.yaml"
    config.write_text("preset: tiny\nweights: random\nstages: [appearance]\nshard_videos: 4\n"
                      "runtime:\n  device: cpu\n  batch_size: 4\n")
    proc = subprocess.run([sys.executable, "-m", "extract", "run", "--dataset", "tgif", "--config", str(config),
                           "--data-root", str(data), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)  # stderr is a pipe: log mode
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "videos extracted" in line]
    first_commit = next(i for i, line in enumerate(lines) if "committed: done 4" in line)
    before = lines[:first_commit]
    assert len(before) >= 3, lines  # one line per video decoded (every = 1 for 8 videos), not one per shard
    decoded = [int(re.search(r"\((\d+) decoded", line).group(1)) for line in before]
    assert decoded == sorted(decoded) and decoded[0] < 4, lines
    for line in lines:
        assert re.search(r" s elapsed, ETA (\d+\.\d s|unknown), last key \d+$", line), line
    assert re.search(r"8/8 videos extracted \(8 decoded, 0 committing; committed: done 8 failed 0\)", lines[-1])


def test_counter_counts_extracted_then_committed(caplog):
    caplog.set_level(logging.INFO, logger="extract")
    counter = Reporter("log").videos(4, every=2)
    for key in "abcd":
        counter.decoded(key)
    assert counter.eta_s() is None  # decoding runs ahead of the models: its rate says nothing of theirs
    for key in "ab":
        counter.extracted(key)
    assert counter.status() == "2/4 videos extracted (4 decoded, 2 committing; committed: done 0 failed 0)"
    counter.advance(True, "a")
    counter.advance(False, "b")  # the shard is committed: a line
    counter.advance(True, "c")  # an executor that reports commits only (Ray): extracted too
    assert counter.status() == "3/4 videos extracted (4 decoded, 0 committing; committed: done 2 failed 1)"
    assert 0 < counter.eta_s() < 60
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("0/4 videos extracted (2 decoded") and "ETA unknown" in messages[0]
    assert any(m.startswith("2/4 videos extracted (4 decoded, 0 committing; committed: done 1 failed 1)")
               and m.endswith("last key b") for m in messages), messages
