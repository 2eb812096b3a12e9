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
NOT_EXTRACTION = {"extract/videoqa", "extract/bench", "extract/viz.py", "extract/export", "extract/compare.py",
                  "extract/cli_export.py", "extract/cli_videoqa.py"}  # trainers and tools


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


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


@pytest.mark.skipif(_git("rev-parse", "--git-dir").returncode != 0, reason="not a git checkout")
def test_dvc_lock_is_neither_committed_nor_ignored():
    """The README's promise: dvc.lock is not committed (a committed one goes stale with every change
    to extract/); and it must not be git-ignored, which makes `dvc repro` refuse to run."""
    assert _git("ls-files", "--error-unmatch", "dvc.lock").returncode != 0, "dvc.lock is committed"
    assert _git("check-ignore", "-q", "dvc.lock").returncode == 1, "dvc.lock is git-ignored: dvc repro refuses then"


def test_max_failures_defaults_are_the_documented_ones():
    """README "Failure semantics": 0 by default, 100 for TGIF, 10 for MSVD, MSRVTT and NExT-QA."""
    from extract.config import RunConfig, load_config

    expected = {"demo": 0, "folder": 0, "tgif": 100, "msvd": 10, "msrvtt": 10, "nextqa": 10}
    assert {name: load_config(name).max_failures for name in expected} == expected
    assert RunConfig.model_fields["max_failures"].default == 0
