"""Parallel decoding (``extract.decode_pool``): same features whatever the worker count, videos in
submission order, a crash contained to its video (whole or in a part), no child outliving the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_same_features, tiny_config
from extract.datasets.base import VideoRecord
from extract.decode_pool import CRASHED, ChildStream, DecodePool
from extract.decoded import SHM_DIR, SHM_PREFIX
from extract.pipeline import run_pipeline
from extract.sampling import SamplingConfig
from extract.store import OutputDir, VideoResult
from extract.video import DecodeConfig, DecodedVideo, decode, open_video
from media import segfault_on_poison, segfault_on_poison_part, write_gif, write_mp4


@pytest.fixture
def mixed_videos(tmp_path) -> Path:
    """GIFs of several lengths and sizes, an mp4 that streams in parts at part_steps 2."""
    d = tmp_path / "videos"
    d.mkdir()
    for i, n in enumerate([12, 3, 20, 6, 9]):
        write_gif(d / f"g{i}.gif", [100] * n, size=(56 + 8 * i, 72))
    write_mp4(d / "long.mp4", 25, num_frames=100, size=(64, 80))  # 4 s: 24 grid frames, 6 steps, 3 parts
    return d


def _shm_files() -> set[str]:
    return {p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}{os.getpid()}-*")}


def test_features_do_not_depend_on_decode_workers(tmp_path, mixed_videos):
    def run(workers: int) -> Path:
        out = tmp_path / f"w{workers}"
        config = tiny_config("folder", out, videos=mixed_videos, decode_workers=workers, shard_videos=3,
                             stages="appearance,objects,motion,trajectories", linking={"min_score": 0.0},
                             decode={"part_steps": 2}, runtime={"batch_size": 2})  # parts are whole batches
        assert run_pipeline(config, progress=False).done == 6
        return out

    one = run(1)
    assert OutputDir(one).done()["long"]["parts"] == 3
    for workers in (2, 3):
        assert_same_features(run(workers), one)


def test_videos_come_back_in_submission_order_as_decoded_here(mixed_videos):
    sampling, config = SamplingConfig(), DecodeConfig(part_steps=2, batch_steps=2)
    records = [VideoRecord(p.stem, p) for p in sorted(mixed_videos.iterdir())] * 2
    pool = DecodePool(sampling, config, 3)
    try:
        handles = [pool.submit(r) for r in records]
        got = [pool.result(r, h)[0] for r, h in zip(records, handles)]
        for record, video in zip(records, got):
            assert Path(video.path).stem == record.key
            if isinstance(video, ChildStream):  # parts decoded in the child equal those decoded here
                here = open_video(record.path, sampling, config)
                for mine, theirs in zip(video.parts(), here.parts(), strict=True):
                    assert mine.part == theirs.part and np.array_equal(mine.frames, theirs.frames)
                    assert np.array_equal(mine.grid, theirs.grid)
                video.close()
            else:
                assert np.array_equal(video.frames, decode(record.path, sampling, config).frames)
    finally:
        pool.close()
    assert sum(isinstance(v, ChildStream) for v in got) == 4  # g2 and long, twice
    assert not _shm_files()


@pytest.mark.parametrize("shared_memory", [True, False])
def test_crash_fails_only_its_video_with_two_workers(tmp_path, shared_memory):
    paths = [write_gif(tmp_path / "a.gif", [100] * 4), write_gif(tmp_path / "poison.gif", [100] * 4),
             write_mp4(tmp_path / "b.mp4", 25, num_frames=30), write_gif(tmp_path / "c.gif", [50] * 6),
             write_gif(tmp_path / "d.gif", [100] * 5)]
    records = [VideoRecord(p.stem, p) for p in paths]
    pool = DecodePool(SamplingConfig(), DecodeConfig(), 2, decode=segfault_on_poison, shared_memory=shared_memory)
    try:
        handles = [pool.submit(r) for r in records]  # a, b queued with poison in the child it kills
        results = {r.key: pool.result(r, h)[0] for r, h in zip(records, handles)}
        again = [pool.submit(r) for r in records[:3]]  # both children work afterwards
        after = [pool.result(r, h)[0] for r, h in zip(records[:3], again)]
    finally:
        pool.close()
    assert results["poison"].reason == CRASHED and after[1].reason == CRASHED
    for key in "abcd":
        assert isinstance(results[key], DecodedVideo) and Path(results[key].path).stem == key
    assert isinstance(after[0], DecodedVideo) and isinstance(after[2], DecodedVideo)
    assert not _shm_files()


def test_crash_in_a_long_videos_part_fails_that_video_only(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_mp4(videos / "poison.mp4", 25, num_frames=100, size=(64, 80))  # 3 parts at part_steps 2
    write_mp4(videos / "long.mp4", 25, num_frames=100, size=(64, 80))
    write_gif(videos / "a.gif", [100] * 6)
    records = [VideoRecord(p.stem, p) for p in sorted(videos.iterdir())]
    pool = DecodePool(SamplingConfig(), DecodeConfig(part_steps=2, batch_steps=2), 2, decode_part=segfault_on_poison_part)
    try:
        opened = {r.key: pool.result(r, pool.submit(r))[0] for r in records}
        outcome = {}
        for key, video in opened.items():
            try:
                outcome[key] = [p.part for p in video.parts()] if isinstance(video, ChildStream) else "whole"
            except Exception as e:  # noqa: BLE001 - the reason is what is checked
                outcome[key] = getattr(e, "reason", repr(e))
            finally:
                if isinstance(video, ChildStream):
                    video.close()
    finally:
        pool.close()
    assert outcome == {"a": "whole", "long": [(0, 3), (1, 3), (2, 3)], "poison": CRASHED}


CHILDREN = """
import multiprocessing.forkserver as fs, os, sys, time
from extract.decode_pool import DecodePool
from extract.sampling import SamplingConfig
from extract.video import DecodeConfig
if __name__ == "__main__":
    pool = DecodePool(SamplingConfig(), DecodeConfig(), 2)
    pids = [p for c in pool._children for p in c._processes] + [fs._forkserver._forkserver_pid]
    print(" ".join(map(str, pids)), flush=True)
    time.sleep(600)
"""


def test_decoding_children_die_with_the_run(tmp_path):
    script = tmp_path / "children.py"
    script.write_text(CHILDREN)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_failed_video_is_a_result_not_a_crash(tmp_path):
    bad = tmp_path / "bad.gif"
    bad.write_bytes(b"GIF89a not really")
    pool = DecodePool(SamplingConfig(), DecodeConfig(), 2)
    try:
        result = pool.result(VideoRecord("bad", bad), pool.submit(VideoRecord("bad", bad)))[0]
    finally:
        pool.close()
    assert isinstance(result, VideoResult) and result.reason and result.reason != CRASHED


def test_contained_decode_as_ray_tasks_use_it(tmp_path):
    from extract.decode_pool import decode_contained

    good, poison = write_gif(tmp_path / "a.gif", [100] * 4), write_gif(tmp_path / "poison.gif", [100] * 4)
    sampling, config = SamplingConfig(), DecodeConfig()
    crashed = decode_contained(VideoRecord("poison", poison), sampling, config, decode=segfault_on_poison)
    row = decode_contained(VideoRecord("a", good), sampling, config, decode=segfault_on_poison)
    assert crashed["reason"] == CRASHED
    assert row["reason"] == "" and np.array_equal(row["frames"], decode(good, sampling, config).frames)


def test_decode_only_bench_ends_with_the_throughput_line(tmp_path):
    from typer.testing import CliRunner

    from extract.cli import app

    result = CliRunner().invoke(app, ["bench", "--decode-only", "--synthetic", "3", "--decode-workers", "1,2",
                                      "--repeat", "1", "--transfer", "both", "--json", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("decode: ") and lines[-1].endswith(" videos/s with 2 workers")
    measured = json.loads((tmp_path / "d.json").read_text())["results"]
    assert [(r["workers"], r["transfer"]) for r in measured] == [(1, "shm"), (1, "pickle"), (2, "shm"), (2, "pickle")]
    assert all(r["grid_frames"] > 0 and r["failed"] == 0 for r in measured)
