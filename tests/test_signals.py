"""A killed or terminated run leaves no process behind, and a rerun resumes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from extract.outputs import verify_output
from extract.store import OutputDir
from media import write_gif

VIDEOS = 40


def group_processes(pgid: int) -> list[str]:
    """``pid cmdline`` of every live process in process group ``pgid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def start_run(videos: Path, out: Path, log: Path) -> subprocess.Popen:
    """``extract run`` in its own process group (its pid is the group id)."""
    return subprocess.Popen(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out", str(out),
         "--preset", "tiny", "--weights", "random", "--stages", "appearance,motion"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def interrupt_mid_run(proc: subprocess.Popen, out: Path, sig: int) -> None:
    """Send ``sig`` once the run is extracting (its decode child up, a shard committed)."""
    deadline = time.monotonic() + 240
    while not (len(group_processes(proc.pid)) >= 3 and OutputDir(out).done()):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "the run did not start extracting"
        time.sleep(0.05)
    os.kill(proc.pid, sig)


def assert_nothing_left(pgid: int) -> None:
    deadline = time.monotonic() + 5
    while (left := group_processes(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        os.killpg(pgid, signal.SIGKILL)  # no leak into the rest of the suite
    assert not left, f"processes of the killed run still alive: {left}"


def test_sigkill_and_sigterm_leave_no_process_and_the_rerun_resumes(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(VIDEOS):
        write_gif(videos / f"v{i:02d}.gif", [60, 90, 120] * 4, size=(64, 80))
    out = tmp_path / "out"

    killed = start_run(videos, out, tmp_path / "killed.log")
    interrupt_mid_run(killed, out, signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert_nothing_left(killed.pid)

    # The killed run wrote no end-of-run record, yet a rerun with other settings names them.
    other = subprocess.run(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out", str(out),
         "--preset", "tiny", "--weights", "random", "--stages", "appearance,motion", "--batch-size", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert other.returncode != 0 and "runtime.batch_size: 16 -> 2" in other.stderr, other.stderr

    terminated = start_run(videos, out, tmp_path / "terminated.log")
    interrupt_mid_run(terminated, out, signal.SIGTERM)
    code = terminated.wait(timeout=60)
    log = (tmp_path / "terminated.log").read_text()
    assert code == 143, log
    assert "interrupted: rerun the same command to resume" in log
    assert_nothing_left(terminated.pid)
    assert len(OutputDir(out).done()) < VIDEOS

    resumed = start_run(videos, out, tmp_path / "resumed.log")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.log").read_text()
    assert len(OutputDir(out).done()) == VIDEOS
    assert verify_output(out) == []
