"""Shared fixtures: tiny datasets written by the tests, and a helper that runs the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from extract.compare import differences, read_features  # noqa: F401 - read_features: the tests import it from here
from extract.config import RunConfig, deep_merge, load_config
from extract.datasets.tgif import write_tgif_questions
from media import write_gif, write_mp4

ALL_STAGES = "appearance,objects,motion"


TINY = {"preset": "tiny", "weights": "random", "runtime": {"device": "cpu", "batch_size": 8}}


def tiny_config(dataset: str, out: Path, **overrides) -> RunConfig:
    """A run on the tiny preset with random weights, CPU, small batches; ``overrides`` nested like the YAML."""
    return load_config(dataset, overrides=deep_merge({"out": out, "stages": ALL_STAGES, **TINY}, overrides))


def tiny_models(**overrides) -> RunConfig:
    """The config of a tiny-preset extractor (random weights, CPU) for tests that build one directly."""
    return RunConfig.model_validate(deep_merge({"dataset": "demo", **TINY}, overrides))


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: tiny tensors run faster, immune to a busy machine's
    spinning threads; with two model workers the tasks really run side by side on 2+ cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def count_row(gif_name: str, key: str) -> dict:
    return {"gif_name": gif_name, "question": "how many times ?", "answer": "2", "vid_id": key, "key": key}


def make_tgif(root: Path, gifs: dict[str, list[int] | bytes | None]) -> Path:
    """A TGIF-format dataset: ``gifs`` maps a name to frame delays (a real GIF), raw bytes, or None (missing)."""
    (root / "gifs").mkdir(parents=True, exist_ok=True)
    for i, (name, content) in enumerate(gifs.items()):
        path = root / "gifs" / f"{name}.gif"
        if isinstance(content, list):
            write_gif(path, content, size=(56 + 8 * (i % 3), 72 + 8 * (i % 2)))
        elif isinstance(content, bytes):
            path.write_bytes(content)
    write_tgif_questions(root / "Test_count_question.csv", "count", [count_row(n, n) for n in gifs])
    return root


@pytest.fixture
def folder_videos(tmp_path) -> Path:
    """Three good videos of different kinds: GIF with unequal delays, mp4 at 25 fps, one-frame GIF."""
    d = tmp_path / "videos"
    d.mkdir()
    write_gif(d / "gif_a.gif", [40, 70, 100] * 5, size=(72, 96))
    write_mp4(d / "mp4_b.mp4", 25, num_frames=40, size=(64, 80))
    write_gif(d / "one_frame.gif", [100], size=(60, 60))
    return d


def assert_same_features(got: Path, want: Path) -> None:
    """The same videos with the same arrays, bit for bit."""
    problems = differences(got, want)
    assert not problems, problems[:10]
