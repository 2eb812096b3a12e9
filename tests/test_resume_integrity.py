"""A rerun on an existing OUT: refuses other settings, redoes damaged shards, leaves a verifiable OUT."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

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


def _rerun(work, *extra: str) -> subprocess.CompletedProcess:
    args = ["--dataset", "folder", "--videos", str(work / "videos"), "--out", str(work / "out"), "--preset", "tiny",
            "--weights", "random", "--device", "cpu", "--batch-size", "8", "--stages", "appearance"]
    return subprocess.run([sys.executable, "-m", "extract", "run", *args, *extra], capture_output=True, text=True,
                          timeout=300)


def _lines(work) -> list[dict]:
    return [json.loads(line) for line in (work / "out" / "manifest.jsonl").read_text().splitlines()]


def _config(work, **overrides):
    return tiny_config("folder", work / "out", videos=work / "videos", **({"stages": "appearance", "shard_videos": 1}
                                                                            | overrides))


def test_records_and_run_json_carry_the_fingerprint(work):
    fingerprints = {r["fingerprint"] for r in _lines(work)}
    run = json.loads((work / "out" / "run.json").read_text())
    assert fingerprints == {run["fingerprint"]["sha256"]}
    fields = run["fingerprint"]["fields"]
    assert fields["sampling.fps"] == 6.0 and fields["decode.max_side"] == 1024 and fields["weights.mode"] == "random"
    assert "decode.part_steps" not in fields and "decode.max_pixels" not in fields and "stages" not in fields


def test_rerun_with_other_settings_refuses_naming_the_fields(work):
    before = (work / "out" / "manifest.jsonl").read_bytes()
    config = work / "fps3.yaml"
    config.write_text("sampling: {fps: 3.0}\nappearance: {size: 64}\n")
    proc = _rerun(work, "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "sampling.fps: 6.0 -> 3.0" in proc.stderr and "appearance.size: 96 -> 64" in proc.stderr
    assert "--out" in proc.stderr and "--reextract" in proc.stderr
    assert (work / "out" / "manifest.jsonl").read_bytes() == before, "refused before any work"


def test_reextract_redoes_every_video_and_verifies(work):
    summary = run_pipeline(_config(work, sampling={"fps": 3.0}, reextract=True))
    assert (summary.done, summary.skipped) == (3, 0)
    assert len({r["fingerprint"] for r in OutputDir(work / "out").done().values()}) == 1
    assert verify_output(work / "out") == []
    # The new settings are now the OUT's: a plain rerun with them skips everything.
    assert run_pipeline(_config(work, sampling={"fps": 3.0})).skipped == 3


def test_records_without_a_fingerprint_are_refused(work):
    manifest = work / "out" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "fingerprint"}) + "\n"
                                for r in _lines(work)))
    proc = _rerun(work)
    assert proc.returncode == 2 and "without a settings fingerprint" in proc.stderr and "--reextract" in proc.stderr
    assert _rerun(work, "--reextract").returncode == 0
    assert verify_output(work / "out") == []


def test_verify_reports_records_that_disagree(work):
    records = _lines(work)
    records[0]["fingerprint"] = "0" * 64
    (work / "out" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    problems = verify_output(work / "out", checksums=False)
    assert any("different settings" in p and records[0]["key"] in p for p in problems), problems


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
