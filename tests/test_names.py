"""File names that are not valid UTF-8 fail their own video, never the run."""

from __future__ import annotations

import os
import subprocess
import sys

from extract.datasets import load_dataset
from extract.outputs import verify_output
from extract.store import OutputDir
from media import write_gif


def test_non_utf8_file_name_fails_its_video_alone(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_gif(videos / "good.gif", [50, 80] * 2, size=(48, 56))
    write_gif(videos / "tmp.gif", [50, 80] * 2, size=(48, 56))
    os.rename(videos / "tmp.gif", os.fsencode(videos) + b"/caf\xe9.gif")  # Latin-1 bytes, as an old FTP leaves them
    (record,) = [v for v in load_dataset("folder", videos).videos if v.key != "good"]
    assert record.key == "caf\\xe9"  # escaped: the key is text that HDF5, JSON and terminals take
    out = tmp_path / "out"
    args = [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out", str(out),
            "--preset", "tiny", "--weights", "random", "--stages", "appearance", "--max-failures", "1"]
    for _ in range(2):  # a rerun retries it, and fails it again the same way
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "failed caf\\xe9 (" in proc.stdout and "caf\\xe9.gif): file name is not valid UTF-8" in proc.stdout
    records, problems = OutputDir(out).read_manifest_checked()
    assert problems == [] and records["good"]["status"] == "done" and records["caf\\xe9"]["status"] == "failed"
    assert os.fsencode(records["caf\\xe9"]["path"]).endswith(b"caf\xe9.gif")  # the real name, escaped in JSON
    assert verify_output(out) == []
