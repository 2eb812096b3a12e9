"""`dvc repro` of the demo chain, offline, in a fresh copy of the project: it runs, and a second
`dvc repro` has nothing to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_EXTRACTION = {"extract/videoqa", "extract/bench", "extract/viz.py", "extract/export", "extract/compare.py"}  # trainers and tools


def test_extract_stage_depends_on_exactly_the_extraction_code():
    import yaml

    deps = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["extract"]["do"]["deps"])
    code = {str(p.relative_to(REPO)) for p in (REPO / "extract").iterdir()
            if p.suffix == ".py" or (p.is_dir() and any(p.glob("*.py")))}
    assert deps - {"pipelines/${item}.yaml"} == code - NOT_EXTRACTION


@pytest.mark.skipif(shutil.which("dvc", path=str(Path(sys.executable).parent)) is None, reason="dvc extra not installed (pip install -e '.[dvc]')")
@pytest.mark.slow
def test_dvc_repro_demo_chain_then_nothing_to_do(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "pipelines", project / "pipelines")
    shutil.copytree(REPO / "extract", project / "extract", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")

    def sh(*args: str) -> str:
        proc = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{args}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    first = sh("dvc", "repro")
    assert "Running stage 'extract@demo'" in first and "Running stage 'verify@demo'" in first
    assert (project / "reports" / "verify-demo.txt").read_text().strip().endswith("OK")
    second = sh("dvc", "repro")
    assert "Running stage" not in second and "up to date" in second
