"""Hostile inputs and output-side failures: each bad video fails alone with a precise reason,
a failing shard write leaves nothing partial, parallel runs on different OUTs do not interfere."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import make_tgif, tiny_config
from extract.datasets.base import AnnotationError
from extract.masn.layout import index_paths
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.store import OutputDir
from media import write_gif, write_mp4


def write_audio_only_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_each_hostile_file_fails_alone_with_its_reason(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(videos / "png_named.gif", format="PNG")
    write_audio_only_mp4(videos / "audio_only.mp4")
    (videos / "zero.webm").write_bytes(b"")
    write_gif(videos / "vidéo à l'été.gif", [50, 80, 120] * 3, size=(64, 64))
    write_mp4(videos / "with space.mp4", 25, num_frames=30)
    summary = run_pipeline(tiny_config("folder", tmp_path / "out", videos=videos, max_failures=10))
    reasons = dict(summary.failures)
    assert reasons.keys() == {"png_named", "audio_only", "zero"}
    assert "not a GIF file" in reasons["png_named"] and "PNG" in reasons["png_named"]
    assert reasons["audio_only"] == "no video stream in the file (audio only?)"
    assert "empty file" in reasons["zero"]
    assert summary.done == 2
    with h5py.File(index_paths(tmp_path / "out" / "masn", "folder").appearance_global, "r") as f:
        assert sorted(f) == ["vidéo à l'été", "with space"]
        assert f["vidéo à l'été"].shape[1] == 2048
    assert verify_output(tmp_path / "out") == []


def test_annotation_problems_stop_before_any_work(tmp_path):
    data = make_tgif(tmp_path / "tgif", {"a": [50, 50], "b": [50, 50]})
    rows = (data / "Test_count_question.csv").read_text().splitlines()
    evil = rows[1].replace("a.gif", "a").split("\t")
    evil[0], evil[-1] = "../../etc/passwd", "c"
    (data / "Test_count_question.csv").write_text("\r\n".join([*rows, "\t".join(evil)]) + "\r\n")
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv.*escapes the data root"):
        run_pipeline(tiny_config("tgif", tmp_path / "out", data_root=data))
    assert not (tmp_path / "out").exists()


def test_annotation_rows_for_missing_videos_and_repeated_keys(tmp_path):
    data = make_tgif(tmp_path / "tgif", {"a": [50, 60, 70], "gone": None})
    with open(data / "Test_count_question.csv", "a", newline="") as f:
        f.write("a\tanother question about a ?\t3\ta\ta\r\n")  # a second question on key a
    summary = run_pipeline(tiny_config("tgif", tmp_path / "out", data_root=data, max_failures=1))
    assert summary.done == 1 and [k for k, _ in summary.failures] == ["gone"]
    done = [r for r in OutputDir(tmp_path / "out").read_manifest().values() if r["status"] == "done"]
    assert [r["key"] for r in done] == ["a"]


def _run_cli(out: Path, videos: Path, *extra: str, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out", str(out),
         "--preset", "tiny", "--weights", "random", "--stages", "appearance", *extra],
        capture_output=True, text=True, timeout=300, preexec_fn=preexec,
    )


def test_failing_shard_write_leaves_nothing_partial_and_resumes(tmp_path, folder_videos):
    out = tmp_path / "out"
    # A small file-size limit makes the shard write fail half-way with EFBIG, like a full disk.
    limit = 40_000

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = _run_cli(out, folder_videos, preexec=small_disk)
    assert failed.returncode == 1, failed.stderr
    assert "writing to" in failed.stderr and "rerun the same command to resume" in failed.stderr
    assert not list((out / "shards").glob("*.tmp")) and not list((out / "shards").glob("*.h5"))
    resumed = _run_cli(out, folder_videos)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 done, 0 failed, 0 skipped" in resumed.stdout
    assert verify_output(out) == []


def test_parallel_runs_on_different_outs_do_not_interfere(tmp_path, folder_videos):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(folder_videos),
             "--out", str(tmp_path / name), "--preset", "tiny", "--weights", "random", "--stages", "appearance,motion"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name in ("one", "two")
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
    for name in ("one", "two"):
        assert verify_output(tmp_path / name) == []
    files = [index_paths(tmp_path / name / "masn", "folder") for name in ("one", "two")]
    with h5py.File(files[0].motion_global, "r") as a, h5py.File(files[1].motion_global, "r") as b:
        assert sorted(a) == sorted(b) == sorted(p.stem for p in folder_videos.iterdir())
        for key in a:
            np.testing.assert_array_equal(a[key][()], b[key][()])


def test_repeated_sigkill_at_random_moments_loses_nothing(tmp_path):
    import random
    import signal
    import time

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):
        write_gif(videos / f"k{i}.gif", [70, 100] * (3 + i % 3), size=(64, 72 + 4 * i))
    config = tmp_path / "cfg.yaml"
    config.write_text("stages: [appearance, motion]\nshard_videos: 2\nmodel: {preset: tiny, weights: random, device: cpu, batch_size: 4}\n")

    def start(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--config", str(config),
             "--videos", str(videos), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    killed, rng = tmp_path / "killed", random.Random(7)
    manifest = killed / "manifest.jsonl"
    for attempt in range(4):
        proc = start(killed)
        # Kill at a random moment: during start-up, mid-group, or right around a commit.
        target = rng.randint(0, 6)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (manifest.exists() and len(manifest.read_text().splitlines()) >= target) or target == 0:
                time.sleep(rng.uniform(0, 1.5))
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = start(killed)
    assert final.wait(timeout=300) == 0
    reference = start(tmp_path / "reference")
    assert reference.wait(timeout=300) == 0
    done = OutputDir(killed).done()
    assert sorted(done) == [f"k{i}" for i in range(8)]
    assert not list((killed / "shards").glob("*.tmp"))
    assert verify_output(killed) == []
    ref_files = index_paths(tmp_path / "reference" / "masn", "folder")
    got_files = index_paths(killed / "masn", "folder")
    for role in ("appearance_global", "motion_global"):
        with h5py.File(getattr(got_files, role), "r") as got, h5py.File(getattr(ref_files, role), "r") as want:
            assert sorted(got) == sorted(want)
            for key in want:
                assert got[key][()].tobytes() == want[key][()].tobytes(), f"{role} {key}"
