"""The model registry: every listed model resolves, unknown names say what exists, step sampling rules,
and the extraction package never imports the VideoQA package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from extract.videoqa.registry import fixed_sample, get_model_spec, list_models, uniform_sample


def test_every_listed_model_resolves_to_a_builder_and_config():
    assert "masn" in list_models()
    for name in list_models():
        spec = get_model_spec(name)
        assert spec.name == name and callable(spec.builder)
        spec.config()  # defaults validate


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(ValueError, match="registered models: .*masn"):
        get_model_spec("nope")


@pytest.mark.parametrize("length,steps", [(1, 16), (5, 16), (15, 16), (16, 16), (17, 16), (100, 16), (3, 1)])
def test_fixed_sample_always_gives_exactly_the_slots_in_order(length, steps):
    idx = fixed_sample(length, steps)
    assert idx.shape == (steps,) and idx.dtype == np.int64
    assert np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() < length
    if length <= steps:
        assert set(idx.tolist()) == set(range(length))  # every real step kept, repeated in order


def test_fixed_sample_repeats_like_average_sample():
    assert fixed_sample(5, 16).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert np.array_equal(fixed_sample(32, 16), uniform_sample(32, 16))


def test_extraction_code_never_imports_videoqa():
    repo = Path(__file__).resolve().parents[1]
    script = textwrap.dedent("""
        import importlib, pathlib, sys
        import extract
        root = pathlib.Path(extract.__file__).parent
        skip = ("extract.videoqa", "extract.cli", "extract.__main__")
        for path in sorted(root.rglob("*.py")):
            name = ".".join(("extract", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
            if not name.startswith(skip):
                importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.startswith("extract.videoqa"))
        assert not leaked, leaked
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
