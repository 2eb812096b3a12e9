"""End-to-end runs of the local executor on videos the tests write: layout, failures, resume, locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from conftest import assert_same_features, make_tgif, tiny_config
from extract.masn_index import index_paths
from extract.pipeline import run_pipeline
from extract.store import OutputDir, OutputLocked
from extract.video import decode
from media import write_gif, write_mp4

REPO = Path(__file__).resolve().parents[1]


def masn_files(out: Path, dataset: str = "folder"):
    return index_paths(out / "masn", dataset)


def test_index_files_open_from_any_directory(tmp_path, folder_videos, monkeypatch):
    out = tmp_path / "out"
    summary = run_pipeline(tiny_config("folder", out, videos=folder_videos))
    assert (summary.done, summary.failed) == (3, 0)
    expected_t = {p.stem: len(decode(p).steps) for p in folder_videos.iterdir()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    files = masn_files(out)
    with h5py.File(files.appearance_global, "r") as f:
        assert sorted(f) == sorted(expected_t)
        for key, t in expected_t.items():
            assert f[key].shape == (t, 2048)
    assert expected_t["one_frame"] == 1


def test_rerun_skips_done_videos(tmp_path, folder_videos):
    out = tmp_path / "out"
    run_pipeline(tiny_config("folder", out, videos=folder_videos, stages="appearance"))
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    again = run_pipeline(tiny_config("folder", out, videos=folder_videos, stages="appearance"))
    assert (again.done, again.failed, again.skipped) == (0, 0, 3)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before


def test_bad_inputs_fail_alone_with_reasons(tmp_path):
    gif = (tmp_path / "src.gif")
    write_gif(gif, [50] * 12, size=(120, 160))
    data = make_tgif(
        tmp_path / "tgif",
        {
            "good": [40, 70, 100, 40, 70, 100],
            "missing": None,
            "empty": b"",
            "text": b"this is not a gif\n",
            "one": [100],
            "truncated": gif.read_bytes()[: gif.stat().st_size // 2],
        },
    )
    out = tmp_path / "out"
    summary = run_pipeline(tiny_config("tgif", out, data_root=data, max_failures=10))
    manifest = OutputDir(out).read_manifest()
    status = {k: (r["status"], r["reason"]) for k, r in manifest.items()}
    assert status["good"] == ("done", "") and status["one"] == ("done", "")
    assert status["missing"][0] == "failed" and "file not found" in status["missing"][1]
    assert "empty file" in status["empty"][1]
    assert "not a GIF" in status["text"][1]
    assert "truncated GIF" in status["truncated"][1]
    assert dict(summary.failures).keys() == {"missing", "empty", "text", "truncated"}
    assert f"failed missing ({data / 'gifs' / 'missing.gif'}): file not found" in summary.lines()
    files = masn_files(out, "tgif")
    for path in files:
        with h5py.File(path, "r") as f:
            keys = set(f["image_features"]) if "image_features" in f else set(f)
            assert keys == {"good", "one"}, path
    with h5py.File(files.appearance_global, "r") as f:
        assert f["one"].shape == (1, 2048)


def test_truncated_mp4_fails_alone(tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    full = write_mp4(tmp_path / "full.mp4", 30, num_frames=60)
    (videos / "cut.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    write_mp4(videos / "fine.mp4", 29.97, num_frames=20)
    summary = run_pipeline(tiny_config("folder", tmp_path / "out", videos=videos, stages="appearance", max_failures=5))
    assert summary.done == 1 and [k for k, _ in summary.failures] == ["cut"]
    assert "cannot open video" in summary.failures[0][1]


def test_second_run_on_same_out_refuses(tmp_path):
    first = OutputDir(tmp_path / "out")
    first.lock()
    try:
        with pytest.raises(OutputLocked, match="in use by another extract run"):
            OutputDir(tmp_path / "out").lock()
    finally:
        first.unlock()
    OutputDir(tmp_path / "out").lock()  # free again once released


def test_missing_weights_stop_before_any_work(tmp_path, folder_videos):
    out = tmp_path / "out"
    (tmp_path / "no_weights").mkdir()
    with pytest.raises(Exception, match=r"resnet50-11ad3fa6\.pth") as info:
        run_pipeline(tiny_config("folder", out, videos=folder_videos, weights=str(tmp_path / "no_weights")))
    assert type(info.value).__name__ == "WeightsUnavailable"
    assert not (out / "shards").exists() and not (out / "manifest.jsonl").exists()


def test_offline_pretrained_weights_name_file_and_remedies(tmp_path, folder_videos):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "hub"), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    proc = subprocess.run(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(folder_videos),
         "--out", str(tmp_path / "out"), "--preset", "tiny", "--stages", "appearance"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2
    assert "resnet50-11ad3fa6.pth" in proc.stderr and "--weights DIR" in proc.stderr and "TORCH_HOME" in proc.stderr
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def _cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "extract", "run", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sigkill_and_resume_completes_exactly_the_missing(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(10):
        write_gif(videos / f"v{i:02d}.gif", [60, 90, 120] * (2 + i % 3), size=(64 + 4 * i, 80))
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "stages: [appearance, motion]\nshard_videos: 1\nprefetch: 1\n"
        "preset: tiny\nweights: random\nruntime: {device: cpu, batch_size: 4}\n"
    )
    args = ["--dataset", "folder", "--config", str(config), "--videos", str(videos)]
    killed = tmp_path / "killed"
    proc = _cli([*args, "--out", str(killed)])
    manifest = killed / "manifest.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed:\n{proc.stdout.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(OutputDir(killed).done())
    assert 3 <= partial < 10
    resumed = _cli([*args, "--out", str(killed)])
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"{10 - partial} done, 0 failed, {partial} skipped" in log
    reference = tmp_path / "reference"
    ref = _cli([*args, "--out", str(reference)])
    assert ref.wait(timeout=300) == 0
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    done_keys = [r["key"] for r in records if r["status"] == "done"]
    assert sorted(done_keys) == [f"v{i:02d}" for i in range(10)], "every key done exactly once"
    assert not list((killed / "shards").glob("*.tmp"))
    stored = []
    for shard in (killed / "shards").iterdir():
        with h5py.File(shard, "r") as f:
            stored += list(f["appearance"])
    assert sorted(stored) == sorted(done_keys), "no orphan or duplicate shard data"
    assert_same_features(killed, reference)


def test_cli_refuses_second_concurrent_run(tmp_path, folder_videos):
    out = tmp_path / "out"
    holder = OutputDir(out)
    holder.lock()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(folder_videos),
             "--out", str(out), "--preset", "tiny", "--weights", "random"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        holder.unlock()
    assert proc.returncode == 2
    assert "in use by another extract run" in proc.stderr and f"pid {os.getpid()}" in proc.stderr


def test_run_json_and_shards_record_the_resolved_config(tmp_path, folder_videos, monkeypatch):
    from typer.testing import CliRunner

    from extract.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--dataset", "folder", "--videos", "videos", "--out", "out", "--preset", "tiny",
                                      "--weights", "random", "--stages", "appearance", "--device", "auto", "--limit", "1"])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    config = run["config"]
    assert config["appearance"] == {"arch": "resnet50", "size": 96}
    assert config["motion"] == {"arch": "i3d_r50", "size": 64}
    assert (config["detector"]["arch"], config["detector"]["min_size"], config["detector"]["max_size"]) == (
        "fasterrcnn_mobilenet_v3_large_320_fpn", 128, 192)
    assert config["runtime"]["device"] in ("cpu", "cuda") and config["runtime"]["threads"] >= 1  # as used
    assert config["out"] == str(tmp_path / "out") and config["videos"] == str(folder_videos)
    assert {"torch", "torchvision", "h5py", "numpy", "vqa-extract"} <= set(run["versions"])
    if (REPO / ".git").exists():  # a checkout (a worktree's .git is a file)
        assert len(run["versions"]["git_commit"]) == 40 and run["versions"]["git_dirty"] in ("true", "false")
    (shard,) = (tmp_path / "out" / "shards").glob("*.h5")
    with h5py.File(shard, "r") as f:
        assert json.loads(f.attrs["config"]) == config
        assert json.loads(f.attrs["versions"]) == run["versions"]
