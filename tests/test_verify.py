"""`extract verify` finds and names each kind of damage to an output directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import tiny_config
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.store import OutputDir


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    videos = root / "videos"
    videos.mkdir()
    from media import write_gif

    for i in range(3):
        write_gif(videos / f"v{i}.gif", [60, 90, 120] * (2 + i), size=(64, 72))
    out = root / "out"
    config = tiny_config("folder", out, videos=videos, shard_videos=1)
    assert run_pipeline(config).done == 3
    return out


@pytest.fixture
def out(pristine, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def _shard_of(out, key: str):
    return out / "shards" / OutputDir(out).read_manifest()[key]["shard"]


def test_pristine_output_verifies(out):
    assert verify_output(out) == []
    proc = subprocess.run([sys.executable, "-m", "extract", "verify", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout


def test_missing_shard(out):
    shard = _shard_of(out, "v1")
    shard.unlink()
    assert any(f"shard {shard.name} is missing" in p for p in verify_output(out))


def test_record_without_data(out):
    with h5py.File(_shard_of(out, "v0"), "a") as f:
        for group in list(f):
            del f[group]["v0"]
    problems = verify_output(out, checksums=False)
    assert any("v0: manifest says done" in p and "no data" in p for p in problems)


def test_data_without_record(out):
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records if r["key"] != "v2"))
    problems = verify_output(out)
    assert any("has data but no manifest record" in p for p in problems)


def test_nan_in_a_feature(out):
    with h5py.File(_shard_of(out, "v1"), "a") as f:
        f["motion"]["v1"][0, 3] = np.nan
    problems = verify_output(out, checksums=False)
    assert any("v1: motion has NaN or Inf" in p for p in problems)


def test_mismatched_t_across_masn_files(out):
    with h5py.File(_shard_of(out, "v2"), "a") as f:
        data = f["motion"]["v2"][()]
        del f["motion"]["v2"]
        f["motion"]["v2"] = data[:-1]
    problems = verify_output(out, checksums=False)
    assert any("v2: arrays disagree on T" in p for p in problems)
    assert any("v2: T differs across the MASN index files" in p for p in problems)


def test_shard_edited_after_commit(out):
    with h5py.File(_shard_of(out, "v0"), "a") as f:
        f["appearance"]["v0"][0, 0] += 1.0
    assert any("changed after commit" in p for p in verify_output(out))
    proc = subprocess.run([sys.executable, "-m", "extract", "verify", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and "changed after commit" in proc.stdout


@pytest.mark.parametrize(
    "name, bad, expected",
    [
        ("image_features", lambda a: a[:, :, :100], "image_features has shape"),  # trailing 2048 cut
        ("detections/labels", lambda a: a.astype(np.float32), "detections/labels has dtype float32, expected int64"),
        ("spatial_features", lambda a: a[..., None], "spatial_features has shape"),  # one axis too many
        ("detections/scores", lambda a: a[:, :5], "arrays disagree on objects"),  # 5 slots, the others 10
    ],
)
def test_wrongly_shaped_or_typed_array(out, name, bad, expected):
    group, _, leaf = name.partition("/")
    with h5py.File(_shard_of(out, "v1"), "a") as f:
        node = f[group]["v1"] if leaf else f[group]
        field = leaf or "v1"
        data = bad(node[field][()])
        del node[field]
        node[field] = data
    assert any(p.startswith("v1: ") and expected in p for p in verify_output(out, checksums=False))
    proc = subprocess.run([sys.executable, "-m", "extract", "verify", "--no-checksums", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and expected in proc.stdout, proc.stdout + proc.stderr


def test_array_not_in_the_layout(out):
    with h5py.File(_shard_of(out, "v0"), "a") as f:
        f["detections"]["v0"]["extra"] = np.zeros(3)
    assert any("v0: detections/extra is not in the layout" in p for p in verify_output(out, checksums=False))


def test_compare_outputs_script_finds_a_changed_value(pristine, out):
    script = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "compare_outputs.py")]
    same = subprocess.run(script + [str(out), str(pristine)], capture_output=True, text=True)
    assert same.returncode == 0 and "identical: 3 videos" in same.stdout, same.stdout + same.stderr
    with h5py.File(_shard_of(out, "v2"), "a") as f:
        f["detections"]["v2"]["boxes"][0, 0, 0] += 0.5
    changed = subprocess.run(script + [str(out), str(pristine)], capture_output=True, text=True)
    assert changed.returncode == 1 and "v2/detections/boxes: values differ" in changed.stdout


def _index(out, name: str = "res152_avgpool.hdf5"):
    (path,) = (out / "masn").rglob(name)
    return path


def _verify_cli(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "extract", "verify", str(out)], capture_output=True, text=True)


def test_key_removed_from_an_index_file(out):
    with h5py.File(_index(out), "a") as f:
        del f["v1"]
    assert any("res152_avgpool.hdf5" in p and "v1" in p and "missing" in p for p in verify_output(out))


def test_deleted_index_file(out):
    _index(out).unlink()
    assert any("res152_avgpool.hdf5" in p and "missing" in p for p in verify_output(out))


def test_links_swapped_between_keys(out):
    path = _index(out)
    with h5py.File(path, "a") as f:
        a, b = f.get("v0", getlink=True), f.get("v1", getlink=True)
        del f["v0"], f["v1"]
        f["v0"] = h5py.ExternalLink(b.filename, b.path)
        f["v1"] = h5py.ExternalLink(a.filename, a.path)
    problems = verify_output(out)
    assert any("res152_avgpool.hdf5" in p and "v0" in p and "points to" in p for p in problems), problems


def test_truncated_shard_is_a_line_not_a_traceback(out):
    shard = _shard_of(out, "v1")
    shard.write_bytes(shard.read_bytes()[:-200])
    proc = _verify_cli(out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"shard {shard.name}" in proc.stdout


def test_corrupt_index_file_is_a_line_not_a_traceback(out):
    path = _index(out, "tgif_i3d_hw7_perclip_avgpool.hdf5")
    path.write_bytes(b"not hdf5 at all" * 10)
    proc = _verify_cli(out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert path.name in proc.stdout and "cannot be read" in proc.stdout


def test_inspect_names_a_missing_shard(out):
    shard = _shard_of(out, "v2")
    shard.unlink()
    proc = subprocess.run([sys.executable, "-m", "extract", "inspect", str(out)], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"shard {shard.name} is missing" in proc.stdout
