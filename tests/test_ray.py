"""The Ray executor on a real local cluster (2 CPUs): same features and manifest as the local
executor, a killed model actor, a corrupt input, a killed driver and its resume.

One cluster serves every test; the local and Ray runs of the shared dataset are made once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from conftest import assert_same_features, make_tgif, tiny_config
from extract.fingerprint import SettingsChanged
from extract.pipeline import run_pipeline
from extract.store import OutputDir
from media import write_gif

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

GOOD = [f"v{i}" for i in range(6)]
# 2 videos per actor call; one-step model batches and one step per part (parts are whole
# batches), so the two-step videos take the streamed path (the actor decodes them).
SETTINGS = {"shard_videos": 2, "max_failures": 5, "runtime": {"batch_size": 1}, "decode": {"part_steps": 1}}


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray cluster for the whole session; yields its address for subprocess drivers."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")  # inherited by the cluster and by subprocess drivers
        ray.init(num_cpus=2)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Six good GIFs of different sizes and lengths, and one truncated GIF."""
    root = tmp_path_factory.mktemp("ray_data")
    source = write_gif(root / "source.gif", [50] * 12, size=(120, 160))
    gifs: dict[str, list[int] | bytes] = {key: [40, 70, 100] * (2 + i % 3) for i, key in enumerate(GOOD)}
    gifs["corrupt"] = source.read_bytes()[: source.stat().st_size // 2]
    return make_tgif(root / "tgif", gifs)


@pytest.fixture(scope="module")
def local_out(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    run_pipeline(tiny_config("tgif", out, data_root=dataset, **SETTINGS))
    return out


@pytest.fixture(scope="module")
def ray_out(dataset, tmp_path_factory, ray_address) -> tuple[Path, object, list[int]]:
    """The shared Ray run, and the done records its manifest held, sampled while the job ran."""
    import extract.executors.ray as ray_executor

    out = tmp_path_factory.mktemp("ray") / "out"
    seen, running = [], threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            try:
                seen.append((out / "manifest.jsonl").read_text().count('"done"'))
            except FileNotFoundError:
                seen.append(0)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_executor, "FOLD_EVERY_S", 0.2)
        watcher.start()
        try:
            summary = run_pipeline(tiny_config("tgif", out, data_root=dataset, executor="ray", **SETTINGS))
        finally:
            running.clear()
            watcher.join()
    return out, summary, seen


def committed(out: Path) -> int:
    """Done records committed so far: in the manifest, or in shard sidecars not yet folded into it."""
    files = [out / "manifest.jsonl", *(out / "shards").glob("*.records.jsonl")] if (out / "shards").exists() else []
    count = 0
    for path in files:
        try:
            count += path.read_text().count('"done"')
        except FileNotFoundError:  # a sidecar folded meanwhile
            continue
    return count


def manifest_view(out: Path) -> dict[str, tuple]:
    return {k: (r["status"], r["reason"], r.get("steps")) for k, r in OutputDir(out).read_manifest().items()}


def assert_exactly_once(out: Path) -> None:
    """Each good video has one done manifest line and its data in exactly one shard."""
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in lines if r["status"] == "done") == GOOD
    stored = []
    for shard in (out / "shards").iterdir():
        assert shard.suffix == ".h5", f"leftover {shard.name}"
        with h5py.File(shard, "r") as f:
            stored += list(f["appearance"])
    assert sorted(stored) == GOOD


def test_same_features_and_manifest_as_local(ray_out, local_out):
    out, summary, _ = ray_out
    assert (summary.done, summary.failed) == (len(GOOD), 1)
    assert manifest_view(out) == manifest_view(local_out)
    streamed = [k for k, r in OutputDir(out).done().items() if r.get("parts")]
    assert streamed == [k for k, r in OutputDir(local_out).done().items() if r.get("parts")] and len(streamed) == 2
    assert_same_features(out, local_out)
    assert_exactly_once(out)


def test_manifest_fills_while_the_job_runs(ray_out):
    """The driver folds the write tasks' sidecars as shards land, not only when Ray Data's
    write ends: the manifest (and the progress, which follows it) held some videos but not all."""
    _, _, seen = ray_out
    assert any(0 < n < len(GOOD) for n in seen), sorted(set(seen))
    assert seen == sorted(seen) and seen[-1] == len(GOOD)


def test_corrupt_video_fails_alone_with_reason(ray_out):
    out, summary, _ = ray_out
    manifest = OutputDir(out).read_manifest()
    assert manifest["corrupt"]["status"] == "failed" and "truncated GIF" in manifest["corrupt"]["reason"]
    assert [key for key, _ in summary.failures] == ["corrupt"]
    assert all(manifest[key]["status"] == "done" for key in GOOD)
    with h5py.File(out / "masn" / "feat_r6_vsync2" / "res152_avgpool.hdf5", "r") as f:
        assert sorted(f) == GOOD


def _actor_pids() -> list[int]:
    """Processes of the model actors, found by the title Ray gives them."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"_ExtractorActor" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_killed_actor_is_replaced_and_nothing_is_lost(dataset, local_out, tmp_path, ray_address):
    out = tmp_path / "out"
    killed: dict[str, object] = {}

    def kill_actor_after_first_commit() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _actor_pids()
            if pids and committed(out) >= 1:
                killed["committed"] = committed(out)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed["pids"] = pids
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_actor_after_first_commit)
    watcher.start()
    config = tiny_config("tgif", out, data_root=dataset, executor="ray", **(SETTINGS | {"shard_videos": 1}))
    summary = run_pipeline(config)
    watcher.join()
    assert killed.get("pids"), "the actor was never killed"
    assert killed["committed"] < len(GOOD), "the run was over before the kill"
    assert (summary.done, summary.failed) == (len(GOOD), 1)
    assert_exactly_once(out)
    assert_same_features(out, local_out)


def test_driver_killed_then_resumed_completes_exactly_the_missing(dataset, local_out, tmp_path, ray_address):
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(
        "stages: [appearance, objects, motion]\nshard_videos: 1\nmax_failures: 5\n"
        "preset: tiny\nweights: random\nruntime: {device: cpu, batch_size: 1}\ndecode: {part_steps: 1}\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "extract", "run", "--dataset", "tgif", "--data-root", str(dataset), "--config",
         str(config), "--out", str(out), "--executor", "ray", "--address", ray_address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if committed(out) >= 2:
            break
        time.sleep(0.02)
    assert driver.poll() is None, "the driver ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    # The dead driver's settings are on record from its start: a resume with others names them.
    with pytest.raises(SettingsChanged, match=r"runtime\.batch_size: 1 -> 2"):
        run_pipeline(tiny_config("tgif", out, data_root=dataset, executor="ray",
                                 **(SETTINGS | {"runtime": {"batch_size": 2}})))

    # The resume folds the dead driver's sidecars first (a write task of the dead job may
    # still have committed one after the kill), then extracts the rest.
    resumed = run_pipeline(tiny_config("tgif", out, data_root=dataset, executor="ray", **SETTINGS))
    assert 2 <= resumed.skipped < len(GOOD) and resumed.done + resumed.skipped == len(GOOD)
    assert resumed.failed == 1, "the corrupt video is retried, and fails again"
    assert_exactly_once(out)
    assert_same_features(out, local_out)


def test_driver_builds_no_model(tmp_path, folder_videos, monkeypatch):
    """With ``--executor ray`` only the actors build the models."""
    import extract.executors.ray as ray_executor
    import extract.features.build as build

    built, executed = [], []
    monkeypatch.setattr(build, "build_extractor", lambda *args, **kwargs: built.append(args))
    monkeypatch.setattr(ray_executor, "execute_ray", lambda config, todo, *rest: executed.append(len(todo)))
    run_pipeline(tiny_config("folder", tmp_path / "out", videos=folder_videos, executor="ray"))
    assert executed == [3] and built == []


def test_external_detections_give_the_same_features_and_failures_as_local(dataset, local_out, tmp_path, ray_address):
    from extract.export import export_run_detections

    dets = tmp_path / "dets"
    export_run_detections(local_out, dets)
    (dets / "v5.json").unlink()  # fails alone, with the same reason under both executors
    settings = SETTINGS | {"detections": {"path": dets}}
    local = run_pipeline(tiny_config("tgif", tmp_path / "local", data_root=dataset, **settings))
    remote = run_pipeline(tiny_config("tgif", tmp_path / "ray", data_root=dataset, executor="ray", **settings))
    assert (remote.done, remote.failed) == (local.done, local.failed) == (len(GOOD) - 1, 2)
    assert manifest_view(tmp_path / "ray") == manifest_view(tmp_path / "local")
    assert "v5.json: no detections" in dict(remote.failures)["v5"]
    assert_same_features(tmp_path / "ray", tmp_path / "local")
