"""The cluster path: each shard committed by its write task (a sidecar of its manifest records),
every crash case of that commit, and a real Ray job (``ray start --head``, ``ray job submit``,
``ray job stop`` mid-run, a second submission that resumes exactly).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import assert_same_features
from extract.config import load_config
from extract.datasets import generate_demo
from extract.pipeline import run_pipeline
from extract.store import OutputDir, ShardSink, VideoResult

REPO = Path(__file__).resolve().parent.parent
SIDECARS = "part-*.h5.records.jsonl"


def result(key: str, value: float | None) -> VideoResult:
    """A video's result: one 2x4 appearance array filled with ``value``, or a failure (None)."""
    if value is None:
        return VideoResult(key, f"/videos/{key}.gif", reason="decode failed: truncated GIF")
    return VideoResult(key, f"/videos/{key}.gif", features={"appearance": np.full((2, 4), value, np.float32)},
                       info={"steps": 2})


@pytest.fixture
def sink(tmp_path) -> ShardSink:
    sink = ShardSink(OutputDir(tmp_path / "out"), {"config": "{}"})
    sink.on_write_start()
    return sink


def write_task(sink: ShardSink, results: list[VideoResult]) -> list[dict]:
    """What a Ray write task does: the shard, then its sidecar."""
    records = sink.write(results)
    sink.write_sidecar(records)
    return records


def manifest_lines(out: OutputDir) -> list[dict]:
    return [json.loads(line) for line in out.manifest_path.read_text().splitlines()] if out.manifest_path.exists() else []


def stored_keys(out: OutputDir) -> list[str]:
    keys = []
    for shard in out.shards.glob("*.h5"):
        with h5py.File(shard, "r") as f:
            keys += list(f["appearance"])
    return sorted(keys)


def test_sidecar_is_the_commit_and_the_next_run_folds_it(sink):
    records = write_task(sink, [result("a", 1), result("b", 2), result("bad", None)])
    out = sink.out
    shard = records[-1]["shard"]
    assert sorted(p.name for p in out.shards.iterdir()) == [shard, shard + ".records.jsonl"]
    assert not out.manifest_path.exists()
    assert out.clean() == []  # the pipeline's start: fold, then remove leftovers
    assert manifest_lines(out) == records
    assert sorted(p.name for p in out.shards.iterdir()) == [shard]
    assert sorted(out.done()) == ["a", "b"] and out.read_manifest()["bad"]["status"] == "failed"


def test_shard_without_sidecar_is_an_orphan(sink):
    """Killed between the shard's rename and the sidecar's: the videos are extracted again."""
    sink.write([result("a", 1)])
    assert [p.name for p in sink.out.clean()] == ["part-00000.h5"]
    assert manifest_lines(sink.out) == [] and list(sink.out.shards.iterdir()) == []


def test_fold_interrupted_before_the_deletes_commits_once(sink):
    """Killed after the manifest append, before the sidecar is deleted: the next fold skips it."""
    write_task(sink, [result("a", 1), result("bad", None)])
    sidecar = next(sink.out.shards.glob(SIDECARS))
    kept = sidecar.read_bytes()
    assert len(sink.out.fold_sidecars()) == 2
    sidecar.write_bytes(kept)
    assert sink.out.fold_sidecars() == []
    assert sorted(r["key"] for r in manifest_lines(sink.out)) == ["a", "bad"]
    assert not list(sink.out.shards.glob(SIDECARS))


def test_retried_write_task_commits_one_shard(sink):
    """A write task whose worker died after both renames ran again: one record per key."""
    batch = [result("a", 1), result("b", 2)]
    write_task(sink, batch)
    retry = write_task(sink, batch)
    removed = sink.out.clean()
    assert [p.name for p in removed] == ["part-00000.h5"]
    assert manifest_lines(sink.out) == retry and retry[0]["shard"] == "part-00001.h5"
    assert stored_keys(sink.out) == ["a", "b"]


def test_batch_of_failures_has_a_sidecar_without_shard(sink):
    records = write_task(sink, [result("bad", None), result("worse", None)])
    assert [p.name for p in sink.out.shards.iterdir()] == ["part-00000.h5.records.jsonl"]  # no claim left
    sink.out.clean()
    assert manifest_lines(sink.out) == records
    later = write_task(sink, [result("a", 1)])
    assert later[0]["shard"] == "part-00000.h5"  # the number is free again once folded


def test_sidecar_temp_and_damaged_sidecars(sink, caplog):
    """A torn temp sidecar is removed; a sidecar whose shard is gone commits only its failures."""
    records = write_task(sink, [result("a", 1), result("bad", None)])
    (sink.out.shards / records[-1]["shard"]).unlink()
    temp = sink.out.shards / ".part-00007.h5.records.jsonl.123.tmp"
    temp.write_text('{"key": "z", "sta')
    removed = sink.out.clean()
    assert temp in removed
    assert [r["key"] for r in manifest_lines(sink.out)] == ["bad"]
    assert "part-00000.h5 is missing; a is extracted again" in caplog.text


# The real cluster path: a Ray head with the job API on this machine.

JOB_VIDEOS = 8  # a stop lands 5-10 s after the first shard (CLI start-up, SIGTERM): 1-4 more videos commit meanwhile
# One video per shard, so that a stop lands between shards; tiny models, small batches.
JOB_CONFIG = (
    "stages: [appearance, objects, motion]\nshard_videos: 1\nmax_failures: 0\npreset: tiny\nweights: random\n"
    "runtime: {device: cpu, batch_size: 4}\n"
)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def committed_done(out: Path) -> int:
    """Done records committed so far, in the manifest or in sidecars not yet folded."""
    count = 0
    for path in [out / "manifest.jsonl", *(out / "shards").glob("*.records.jsonl")]:
        try:
            count += path.read_text().count('"done"')
        except FileNotFoundError:  # not written yet, or folded meanwhile
            continue
    return count


class RayHead:
    """``ray start --head --block`` in its own session, with its own temp dir and ports: stopped
    by signalling that session only (``ray stop`` would stop every Ray cluster on the machine)."""

    def __init__(self, root: Path) -> None:
        gcs, dashboard, client, agent = free_ports(4)
        self.url = f"http://127.0.0.1:{dashboard}"
        self.temp = Path(tempfile.mkdtemp(prefix="rayjob-", dir="/tmp"))  # short: socket paths
        # The job must import the uploaded working dir, not this process's PYTHONPATH.
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
        self.env |= {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.log = open(root / "head.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus", "2",
             "--port", str(gcs), "--dashboard-port", str(dashboard), "--include-dashboard=true",
             "--dashboard-host", "127.0.0.1", "--ray-client-server-port", str(client),
             "--dashboard-agent-listen-port", str(agent), "--temp-dir", str(self.temp), "--disable-usage-stats"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def ray(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, cwd=REPO)

    def status(self, job: str) -> str:
        """The CLI's line: "Job 'ID' was stopped", "... succeeded", "... failed"..."""
        return self.ray("job", "status", "--address", self.url, job, timeout=60).stdout

    def logs(self, job: str) -> str:
        return self.ray("job", "logs", "--address", self.url, job, timeout=60).stdout

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (Path(self.log.name).read_text())[-3000:]
            if self.ray("job", "list", "--address", self.url, timeout=60).returncode == 0:
                return
            time.sleep(1)
        raise TimeoutError(f"the Ray head at {self.url} did not start the job API within {timeout} s")

    def stop(self) -> None:
        """SIGTERM to the session (``ray start --block`` stops its processes), then SIGKILL what is left."""
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        for pid in self._session_pids():  # Ray processes that left the session: named by our temp dir
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)

    def _session_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and str(self.temp).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids


@pytest.mark.slow
@pytest.mark.ray
def test_job_submit_stop_and_resubmit_resumes_exactly(tmp_path):
    pytest.importorskip("ray.dashboard.modules.job")
    data, out, config = tmp_path / "demo", tmp_path / "out", tmp_path / "run.yaml"
    generate_demo(data, num_videos=JOB_VIDEOS)
    config.write_text(JOB_CONFIG)
    clock, seconds = time.monotonic(), {}

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name], clock = time.monotonic() - clock, time.monotonic()

    head = RayHead(tmp_path)  # starts while the local run goes
    # One shell word for the CLI, which quotes each word it gets: the import check, then the run.
    entrypoint = [
        "sh", "-c",
        'python -c "import extract; print(\'extract from\', extract.__file__)" && '
        f"python -m extract run --dataset demo --data-root {data} --config {config} --out {out} "
        "--executor ray --address auto",
    ]
    try:
        reference = tmp_path / "local"
        run_pipeline(load_config("demo", config_path=config, overrides={"out": reference, "data_root": data}))
        lap("local run")
        head.wait_ready()
        lap("head ready")
        submit = head.ray("job", "submit", "--address", head.url, "--submission-id", "first", "--no-wait",
                          "--working-dir", str(REPO), "--", *entrypoint)
        assert submit.returncode == 0, submit.stderr[-3000:]
        deadline, checked = time.monotonic() + 300, time.monotonic()
        while committed_done(out) < 1:
            assert time.monotonic() < deadline, head.logs("first")[-3000:]
            if time.monotonic() - checked > 10:  # each CLI call is a Python start-up: seldom
                status, checked = head.status("first"), time.monotonic()
                assert "failed" not in status and "succeeded" not in status, head.logs("first")[-3000:]
            time.sleep(0.2)
        lap("first job, to its first shard")
        stop = head.ray("job", "stop", "--address", head.url, "first")
        assert stop.returncode == 0, stop.stderr[-3000:]
        lap("ray job stop")
        assert "was stopped" in head.status("first")
        logs = head.logs("first")
        assert "extract from" in logs and "working_dir_files" in logs, logs[-3000:]  # the uploaded copy
        stopped_with = committed_done(out)
        assert 1 <= stopped_with < JOB_VIDEOS, f"{stopped_with} done when stopped"
        # SIGTERM lets the driver fold the sidecars as it stops; a SIGKILL leaves them to the resume.
        folded_at_stop = not list((out / "shards").glob(SIDECARS))

        second = head.ray("job", "submit", "--address", head.url, "--submission-id", "second",
                          "--working-dir", str(REPO), "--", *entrypoint, timeout=600)
        lap("second job")
        assert "succeeded" in head.status("second"), second.stdout[-3000:]
    finally:
        head.stop()
        lap("head stop")

    # Exactly once: one manifest line per video, each video's arrays in one shard, and
    # nothing left between the renames; the features are the local run's, bit for bit.
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in lines) == sorted(OutputDir(reference).done()) and len(lines) == JOB_VIDEOS
    assert all(r["status"] == "done" for r in lines)
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted({r["shard"] for r in lines})
    assert_same_features(out, reference)
    resumed = json.loads((out / "run.json").read_text())["this_run"]
    assert resumed["skipped"] >= stopped_with and resumed["done"] == JOB_VIDEOS - resumed["skipped"]
    print(f"stopped with {stopped_with} done (sidecars folded at the stop: {folded_at_stop}), resumed "
          f"{resumed['done']}; " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
