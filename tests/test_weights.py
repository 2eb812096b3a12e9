"""Weights files checked before any work: all missing ones named at once, empty or wrong files
refused by the sha256 in their torchvision names, sha256 recorded in run.json, a mistyped mode
refused. Real files of the expected names; no network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from extract.models.weights import WeightsSpec, WeightsUnavailable, resolve_all

APPEARANCE, DETECTOR, MOTION = ("resnet50-11ad3fa6.pth", "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
                                "I3D_8x8_R50.pyth")


def _run(tmp_path, videos, weights: str, stages: str = "appearance,objects,motion") -> subprocess.CompletedProcess:
    # An unreachable proxy: a test that tried to download would fail, not hang.
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "hub"), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out",
         str(tmp_path / "out"), "--preset", "tiny", "--device", "cpu", "--stages", stages, "--weights", weights],
        capture_output=True, text=True, env=env, timeout=600,
    )


def _refused_before_work(proc: subprocess.CompletedProcess, tmp_path) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "manifest.jsonl").exists() and not (tmp_path / "out" / "shards").exists()


def test_every_missing_file_is_named_at_once(tmp_path, folder_videos):
    weights = tmp_path / "weights"
    weights.mkdir()
    proc = _run(tmp_path, folder_videos, str(weights))
    _refused_before_work(proc, tmp_path)
    assert "3 weights file(s) missing" in proc.stderr
    for name in (APPEARANCE, DETECTOR, MOTION):
        assert name in proc.stderr and f"/{name}" in proc.stderr  # the file and the URL it comes from


def test_offline_pretrained_names_every_missing_file(tmp_path, folder_videos):
    proc = _run(tmp_path, folder_videos, "pretrained")
    _refused_before_work(proc, tmp_path)
    assert all(name in proc.stderr for name in (APPEARANCE, DETECTOR, MOTION))
    assert "TORCH_HOME" in proc.stderr and "--weights DIR" in proc.stderr


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random-bytes"])
def test_empty_or_wrong_file_is_refused_before_any_work(tmp_path, folder_videos, content):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / APPEARANCE).write_bytes(content)
    proc = _run(tmp_path, folder_videos, str(weights), stages="appearance")
    _refused_before_work(proc, tmp_path)
    assert str(weights / APPEARANCE) in proc.stderr
    if content:
        actual = hashlib.sha256(content).hexdigest()
        assert f"has sha256 {actual[:16]}" in proc.stderr and "expected one starting with 11ad3fa6" in proc.stderr
    else:
        assert "is empty (0 bytes)" in proc.stderr
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in proc.stderr  # how to fix it


def test_file_matching_the_hash_in_its_name_is_accepted(tmp_path):
    content = os.urandom(1000)
    sha = hashlib.sha256(content).hexdigest()
    (tmp_path / f"net-{sha[:8]}.pth").write_bytes(content)
    (tmp_path / "other-00000000.pth").write_bytes(content)
    good = WeightsSpec("test:net", f"https://example.invalid/net-{sha[:8]}.pth")
    assert resolve_all({"m": good}, str(tmp_path)) == {"m": tmp_path / f"net-{sha[:8]}.pth"}
    wrong = WeightsSpec("test:other", "https://example.invalid/other-00000000.pth")
    missing = WeightsSpec("test:gone", "https://example.invalid/gone-12345678.pth")
    with pytest.raises(WeightsUnavailable) as info:
        resolve_all({"a": good, "b": wrong, "c": missing}, str(tmp_path))
    text = str(info.value)
    assert "gone-12345678.pth" in text and "other-00000000.pth" in text and f"net-{sha[:8]}" not in text


def test_run_json_records_each_weights_file_sha256(tmp_path, folder_videos):
    import torch
    from pytorchvideo.models.hub.resnet import i3d_r50

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save({"model_state": i3d_r50(pretrained=False).state_dict()}, weights / MOTION)  # a name with no hash
    proc = _run(tmp_path, folder_videos, str(weights), stages="motion")
    assert proc.returncode == 0, proc.stderr
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["weights_sha256"] == {"motion": hashlib.sha256((weights / MOTION).read_bytes()).hexdigest()}
    assert str(weights / MOTION) in run["weights"]["motion"]


@pytest.mark.parametrize("value", ["Random", "pretraind", "RANDOM"])
def test_mistyped_mode_is_an_error_not_a_directory(tmp_path, folder_videos, value):
    proc = _run(tmp_path, folder_videos, value, stages="appearance")
    _refused_before_work(proc, tmp_path)
    assert f"--weights {value}: not pretrained, not random, and no such directory" in proc.stderr
    assert "did you mean --weights " + ("pretrained" if value == "pretraind" else "random") in proc.stderr
