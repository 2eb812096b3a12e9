"""A rerun on an existing OUT leaves a verifiable OUT."""

from __future__ import annotations

import shutil

import pytest

from conftest import tiny_config
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
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
