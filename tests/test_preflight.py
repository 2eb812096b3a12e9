"""Setting mistakes a person makes stop the run before any work: exit 2, one line naming the file or
option and the fix, no traceback (issue 18 item 1). Run as the command line, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_tgif


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = ["--preset", "tiny", "--weights", "random", "--device", "cpu", "--stages", "appearance"]
    return subprocess.run([sys.executable, "-m", "extract", "run", "--dataset", "tgif", *base, *args],
                          capture_output=True, text=True, timeout=300, env=env)


def _refused(proc: subprocess.CompletedProcess, *parts: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "│" not in proc.stderr, proc.stderr  # rich's traceback frames
    for part in parts:
        assert part in proc.stderr, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tgif(tmp_path_factory.mktemp("data"), {"a": [40, 70] * 2, "b": [50] * 3})


def test_ray_executor_without_ray_says_how_to_install_it(tmp_path, data):
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'ray\'")\n')
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    _refused(_cli("--data-root", str(data), "--out", str(out), "--executor", "ray", env=env),
             '--executor ray', 'pip install "vqa-extract[ray]"')
    assert not out.exists()  # nothing started: OUT not even created, no model built


def test_out_that_is_a_file(tmp_path, data):
    out = tmp_path / "out"
    out.write_text("not a directory")
    _refused(_cli("--data-root", str(data), "--out", str(out)), f"--out {out} is a file", "give a directory")
    _refused(_cli("--data-root", str(data), "--out", str(out / "sub")), f"its parent {out} is a file")


def _read_only_dir(path: Path) -> bool:
    """``path`` made read-only for this process: chmod for a normal user; as root (whom permission
    bits do not stop) a read-only tmpfs mounted on it. False where neither is possible."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        return True
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_read_only_out(tmp_path, data):
    out = tmp_path / "ro"
    if not _read_only_dir(out):
        pytest.skip("cannot make a read-only directory here (root without mount rights)")
    try:
        _refused(_cli("--data-root", str(data), "--out", str(out)), f"--out {out} is not writable")
        _refused(_cli("--data-root", str(data), "--out", str(out / "new")), f"--out {out / 'new'} is not writable",
                 f"created in {out}")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(out)], check=False)
        else:
            out.chmod(0o755)


def test_yaml_syntax_error_names_file_and_line(tmp_path, data):
    config = tmp_path / "run.yaml"
    config.write_text("preset: tiny\nruntime:\n  batch_size: [4\n  device: cpu\n")
    err = _refused(_cli("--config", str(config), "--data-root", str(data), "--out", str(tmp_path / "out")),
                   f"{config}: line ", "YAML syntax error")
    assert "line 4" in err or "line 5" in err, err


def test_config_key_typo_suggests_the_key(tmp_path, data):
    config = tmp_path / "run.yaml"
    config.write_text("preset: tiny\nruntime:\n  batchsize: 4\n")
    _refused(_cli("--config", str(config), "--data-root", str(data), "--out", str(tmp_path / "out")),
             str(config), "runtime.batchsize: unknown key (did you mean 'batch_size'?)")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_device_without_a_gpu(tmp_path, data):
    _refused(_cli("--data-root", str(data), "--out", str(tmp_path / "out"), "--device", "cuda"),
             "--device cuda: no CUDA GPU is visible", "--device cpu")


def _tgif_with(tmp_path: Path, old: bytes, new: bytes) -> Path:
    root = make_tgif(tmp_path / "data", {"a": [40, 70] * 2, "b": [50] * 3})
    csv_path = root / "Test_count_question.csv"
    content = csv_path.read_bytes()
    assert old in content
    csv_path.write_bytes(content.replace(old, new))
    return root


@pytest.mark.parametrize(("old", "new", "says"), [
    (b"how many", b"h\xe9w many", "not UTF-8 text"),  # Latin-1
    (b"how many", b"x" * 200_000, "a field over the csv module's limit of 131072 characters"),
    (b"\tb\r\n", b"\tb\x00b\r\n", "a NUL character"),  # in the key column, the last one
])
def test_annotation_file_problems_name_the_file(tmp_path, old, new, says):
    root = _tgif_with(tmp_path, old, new)
    _refused(_cli("--data-root", str(root), "--out", str(tmp_path / "out")),
             f"{root / 'Test_count_question.csv'}: ", says)


def test_nextqa_csv_field_over_the_limit_names_file_and_line(tmp_path):
    from extract.datasets.base import AnnotationError, read_table

    path = tmp_path / "val.csv"
    path.write_text("video,question\n1,short\n2," + "y" * 200_000 + "\n")
    with pytest.raises(AnnotationError, match=rf"{path}: line 3 has a field over the csv module's limit"):
        read_table(path, delimiter=",", required=("video", "question"))
