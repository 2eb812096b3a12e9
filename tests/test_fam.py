"""FAM (Cai et al., IJCAI 2020): resampling to 35 steps for any video length, padding words left out,
overfitting each head, checkpoint reload, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from extract.videoqa.evaluate import evaluate, load_checkpoint
from extract.videoqa.models.fam import FAM, STEPS, ModelConfig
from extract.videoqa.train import TrainConfig, train
from videoqa_helpers import (
    DIM, action, count, make_batch, overfit, sampled_batch, train_demo_cli, with_targets,
    write_features,
)

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, WORD = 30, 8
TINY = ModelConfig(hidden_size=16, video_slots=6, text_slots=4, dropout=0.0)


def make_model(head: str, num_answers: int = 0, config: ModelConfig = TINY) -> FAM:
    torch.manual_seed(0)
    return FAM(config, vocab_size=VOCAB, word_dim=WORD, appearance_dim=DIM, motion_dim=DIM, head=head,
               num_answers=num_answers)


@pytest.mark.parametrize(("head", "num_answers", "shape"), [("count", 0, (4,)), ("choice", 0, (4, 5)),
                                                            ("open", 1, (4, 1))])
def test_any_video_length_gives_35_steps(tmp_path, head, num_answers, shape):
    batch = sampled_batch(tmp_path, "fam", [1, 5, 35, 50], head=head)  # T = 1, T < 35, T = 35, T > 35
    assert batch.app_global.shape == (4, STEPS, DIM) and bool(batch.video_mask.all())
    assert batch.steps[0].tolist() == [0.0] * STEPS and batch.steps[3, -1].item() == 49.0
    model = make_model(head, num_answers).eval()
    with torch.no_grad():
        output = model(batch)
    assert output.shape == shape and torch.isfinite(output).all()


def test_refuses_a_padded_video_batch():
    with pytest.raises(ValueError, match="unpadded"):
        make_model("count").eval()(make_batch([STEPS, 20]))


def test_padding_words_do_not_change_an_answer():
    # The text memory keeps its state over padding words and attention masks them: a question padded
    # to a longer row gives the same output.
    model = make_model("open", num_answers=4).eval()
    short = make_batch([STEPS], tokens=4, seed=2)
    padded = make_batch([STEPS], tokens=4, seed=2)
    padded.tokens = torch.nn.functional.pad(short.tokens, (0, 3))  # [1, 1, 7], three padding ids
    with torch.no_grad():
        torch.testing.assert_close(model(short), model(padded), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("head", "candidates", "num_answers", "threshold"), [
    ("count", 1, 0, 0.05),  # MSE; targets 1..10 start at ~30
    ("choice", 5, 0, 0.05),  # hinge; 1.0 with equal scores
    ("open", 1, 6, 0.05),  # cross-entropy; ln 6 = 1.8 at the start
])
def test_overfits_a_tiny_subset(head, candidates, num_answers, threshold):
    batch = with_targets(make_batch([STEPS] * 8, candidates=candidates, seed=1), head, num_answers=num_answers)
    losses = overfit(make_model(head, num_answers), batch, steps=150, lr=1e-2)
    assert losses[-1] < threshold < losses[0], (losses[0], losses[-1])


def trainer_config(tmp_path, **overrides) -> TrainConfig:
    settings = dict(dataset="tgif", task="count", feat_dir=tmp_path / "feat", out_dir=tmp_path / "out",
                    random_embeddings=True, word_dim=WORD, epochs=2, patience=None, batch_size=4, lr=3e-3,
                    num_workers=0, progress="none", arch="fam", model=TINY)
    return TrainConfig(**(settings | overrides))


@pytest.mark.parametrize("task", ["count", "action"])
def test_checkpoint_reloads_to_the_same_predictions(tmp_path, task):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 + 7 * k for k in range(8)})
    make = {"count": lambda k: count(str(k), f"q{k}", 1 + k % 4, "train"),
            "action": lambda k: action(str(k), f"q{k}", k % 5, "train")}[task]
    splits = {"train": [make(k) for k in range(6)], "val": [make(6), make(7)]}
    model = TINY.model_copy(update={"standardize_features": task == "count"})
    checkpoint = train(trainer_config(tmp_path, task=task, model=model), splits)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["arch"] == "fam" and run["max_video_steps"] == STEPS
    reloaded, saved = load_checkpoint(checkpoint)
    assert isinstance(reloaded, FAM) and saved["config"]["model"]["video_slots"] == 6
    evaluate(checkpoint, splits["val"], feat_dir=tmp_path / "feat", out=tmp_path / "val.json", device="cpu")
    assert json.loads((tmp_path / "val.json").read_text()) == \
        json.loads((tmp_path / "out" / "predictions_val.json").read_text())
    if task == "count":  # the statistics of the training videos travel in the checkpoint
        assert reloaded.app_std.shape == (DIM,) and not torch.all(reloaded.app_std == 1)


def test_cli_trains_an_epoch_and_evaluates(tmp_path):
    from typer.testing import CliRunner

    from extract.cli import app
    from extract.videoqa.metrics import evaluate_predictions

    train_demo_cli(tmp_path, "Trans", "-o", "video_slots=4", "-o", "text_slots=3", model="fam")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["arch"] == "fam" and run["epochs_run"] == 1 and run["config"]["model"]["video_slots"] == 4
    predictions = tmp_path / "out" / "predictions_test.json"
    result = CliRunner().invoke(app, ["evaluate", "demo", "--predictions", str(predictions)])
    assert result.exit_code == 0, result.output
    assert "Trans" in result.output
    assert evaluate_predictions(predictions, "demo") == run["test"]
