"""A regular (non-editable) install runs the demo from an unrelated directory, on its shipped configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_install_runs_the_demo_from_any_directory(tmp_path):
    wheels, target, cwd = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, timeout=300, capture_output=True)
    (wheel,) = wheels.glob("vqa_extract-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    assert sorted(p.name for p in (target / "extract" / "pipelines").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "pipelines").glob("*.yaml"))
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    where = subprocess.run([sys.executable, "-c", "import extract; print(extract.__file__)"], cwd=cwd, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)
    proc = subprocess.run([sys.executable, "-m", "extract", "run", "--dataset", "demo", "--limit", "2",
                           "--data-root", "data", "--out", "out"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "videos: 2 done, 0 failed" in proc.stdout
    run = json.loads((cwd / "out" / "run.json").read_text())
    # Relative paths resolve against the working directory and are recorded absolute.
    assert run["config"]["out"] == str(cwd / "out") and run["config"]["data_root"] == str(cwd / "data")
    assert "git_commit" not in run["versions"]  # an installed wheel is no checkout
