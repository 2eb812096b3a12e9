"""`extract run` and `extract train` as a person meets them in an 80-column terminal: every option
shows its name, a description and its default; the trainer's errors name the options one types."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from extract.cli import app

COLUMNS = 80


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": str(COLUMNS)}, terminal_width=COLUMNS)
    assert result.exit_code == 0, result.output
    return result.output


def _params(command: str) -> list[click.Parameter]:
    group = typer.main.get_command(app)
    return [p for p in group.commands[command].params if p.name != "help"]


@pytest.mark.parametrize("command", ["run", "train"])
def test_every_option_shows_a_description_and_its_default_at_80_columns(command):
    text = _help(command)
    assert max(len(line) for line in text.splitlines()) <= COLUMNS
    assert "…" not in text, "an option name or its text is cut off"
    params = _params(command)
    for param in params:
        assert param.help, f"{param.name} has no description"
        for name in (o for o in param.opts if o.startswith("--")):
            assert name in text
    shown = text.count("[default:") + text.count("[required]")
    assert shown == len(params), "every option shows its default (or that it is required)"


def test_train_help_defaults_are_the_trainer_defaults():
    from extract.videoqa.train import TrainConfig

    fields = TrainConfig.model_fields
    shown = {p.name: p.show_default for p in _params("train")}
    assert shown["epochs"] == str(fields["epochs"].default)
    assert shown["patience"] == str(fields["patience"].default)
    assert shown["seed"] == str(fields["seed"].default) and shown["device"] == fields["device"].default
    # Resolved per model from its config (the paper's values), so help cannot show one number.
    assert fields["lr"].default is None and fields["batch_size"].default is None
    assert shown["lr"] == shown["batch_size"] == "the model's paper value"


@pytest.fixture
def demo_features(tmp_path):
    from test_masn_train import write_features

    from extract.datasets import load_dataset

    root = tmp_path / "demo"
    write_features(tmp_path / "feat", "demo", {video.key: 3 for video in load_dataset("demo", root).videos})
    return ["train", "masn", "--dataset", "demo", "--data-root", str(root), "--feat-dir", str(tmp_path / "feat"),
            "--out-dir", str(tmp_path / "out"), "--epochs", "1", "--hidden-size", "16", "--device", "cpu"]


@pytest.mark.parametrize("extra, expected", [
    (["--task", "FrameQA"], "pass --glove PATH to a GloVe text file"),
    (["--task", "FrameQA"], "or --random-embeddings for a smoke test"),
    (["--random-embeddings"], "--dataset demo trains one task at a time: pass --task Count|Action|Trans|FrameQA"),
    (["--random-embeddings", "--task", "count"], None),
    (["--random-embeddings", "--task", "Count", "--glove", "nope.txt"], "pass either --glove or --random-embeddings"),
    (["--random-embeddings", "--task", "Count", "--patience", "0"], "--patience: Input should be greater than or equal to 1"),
    (["--random-embeddings", "--task", "Count", "-o", "dropout=2"], "--model-option dropout: Input should be"),
])
def test_trainer_errors_name_the_options_one_types(demo_features, extra, expected):
    result = CliRunner().invoke(app, [*demo_features, *extra])
    if expected is None:
        assert result.exit_code == 0, result.output
        again = CliRunner().invoke(app, [*demo_features, *extra])
        assert again.exit_code == 2 and "choose another --out-dir, or pass --overwrite" in again.output
        return
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output and "random_embeddings=" not in result.output
    assert "data_root" not in result.output and "for TrainConfig" not in result.output
