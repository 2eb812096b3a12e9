"""A rerun on an existing OUT: redoes damaged shards, leaves a verifiable OUT."""

from __future__ import annotations

import shutil

import pytest

from conftest import tiny_config
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.store import OutputDir
from media import write_gif


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Three videos, one per shard, stage appearance only (fast)."""
    root = tmp_path_factory.mktemp("resume")
    videos = root / "videos"
    videos.mkdir()
    for i in range(3):
        write_gif(videos / f"v{i}.gif", [60, 90, 120] * (2 + i), size=(64, 72))
    out = root / "out"
    assert run_pipeline(tiny_config("folder", out, videos=videos, stages="appearance", shard_videos=1)).done == 3
    return root


@pytest.fixture
def work(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "w", symlinks=True)
    return tmp_path / "w"


def _config(work, **overrides):
    return tiny_config("folder", work / "out", videos=work / "videos", **({"stages": "appearance", "shard_videos": 1}
                                                                            | overrides))


def test_adding_stages_extends_and_verifies(work):
    summary = run_pipeline(_config(work, stages="appearance,motion"))
    assert summary.done == 3
    assert verify_output(work / "out") == []


def test_deleted_and_truncated_shards_are_extracted_again(work, caplog):
    done = OutputDir(work / "out").done()
    (work / "out" / "shards" / done["v0"]["shard"]).unlink()
    damaged = work / "out" / "shards" / done["v1"]["shard"]
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with caplog.at_level("WARNING", logger="extract"):
        summary = run_pipeline(_config(work))
    assert (summary.done, summary.skipped) == (2, 1)
    log = caplog.text
    assert f"{done['v0']['shard']} is missing" in log and f"{done['v1']['shard']} has" in log and "v0" in log
    assert verify_output(work / "out") == []


def test_check_shards_finds_a_same_size_corruption(work):
    done = OutputDir(work / "out").done()
    shard = work / "out" / "shards" / done["v2"]["shard"]
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert run_pipeline(_config(work)).skipped == 3, "the size check alone cannot see it"
    summary = run_pipeline(_config(work, check_shards=True))
    assert (summary.done, summary.skipped) == (1, 2)
    assert verify_output(work / "out") == []


def test_torn_record_recovery_verifies(work):
    out = work / "torn"
    assert run_pipeline(tiny_config("folder", out, videos=work / "videos", stages="appearance", shard_videos=3)).done == 3
    manifest = out / "manifest.jsonl"
    text = manifest.read_text()
    last = text.splitlines()[-1]
    manifest.write_text(text[: len(text) - len(last) - 1] + last[:30])  # the last append was cut by a kill
    summary = run_pipeline(tiny_config("folder", out, videos=work / "videos", stages="appearance", shard_videos=3))
    assert (summary.done, summary.skipped) == (1, 2)
    assert verify_output(out) == [], "the superseded copy in the first shard is explained"
