"""The one write-then-rename helper and the one progress reporter."""

from __future__ import annotations

import logging

import pytest

from extract.atomic import atomic_path, atomic_write, atomic_write_json
from extract.progress import Reporter


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "run.json"
    atomic_write(path, "old")
    atomic_write_json(path, {"ü": 1})
    assert path.read_text(encoding="utf-8") == '{"ü": 1}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = atomic_write(tmp_path / "index.h5", b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["index.h5"]


def test_reporter_log_mode_counts_videos_and_batches(caplog):
    caplog.set_level(logging.INFO, logger="extract")
    report = Reporter("log")
    counter = report.videos(3, every=2)
    for ok, key in ((True, "a"), (False, "b"), (True, "c")):
        counter.advance(ok, key)
    counter.close()
    assert list(report.iterate(range(4), 4, "epoch 1")) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("2/3 videos extracted (0 decoded, 0 committing; committed: done 1 failed 1)")
    assert lines[0].endswith("last key b")
    assert lines[1].startswith("3/3 videos extracted") and lines[1].endswith("last key c")
    assert lines[-1] == "epoch 1: batch 4/4"
    with pytest.raises(ValueError, match="progress mode must be one of"):
        Reporter("loud")
