"""MSPAN (Guo et al., ACL 2021): its graphs against a brute-force construction from the frame
intervals, shapes for any video length, overfitting each head, checkpoint reload, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from extract.videoqa.evaluate import evaluate, load_checkpoint
from extract.videoqa.models.mspan import (
    FRAMES, MSPAN, ModelConfig, cross_scale_neighbours, intra_scale_adjacency, scale_graphs,
)
from extract.videoqa.train import TrainConfig, train
from videoqa_helpers import (
    DIM, action, frameqa, make_batch, overfit, sampled_batch, train_demo_cli, with_targets,
    write_features,
)

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, WORD = 30, 8
TINY = ModelConfig(node_dim=16, hidden_size=16, scales=4, iterations=2, lstm_layers=2, dropout=0.0)


def make_model(head: str, num_answers: int = 0, config: ModelConfig = TINY) -> MSPAN:
    torch.manual_seed(0)
    return MSPAN(config, vocab_size=VOCAB, word_dim=WORD, appearance_dim=DIM, motion_dim=DIM, head=head,
                 num_answers=num_answers)


def clip(start: int, scale: int) -> set[int]:
    """The frames of the clip of ``scale`` frames that starts at frame ``start``."""
    return set(range(start, start + scale))


@pytest.mark.parametrize("frames", [16, 9])
def test_graphs_match_a_brute_force_construction(frames):
    for scale in range(1, 9):
        nodes = frames - scale + 1
        # eq. 4: an edge where two clips overlap or are adjacent (frames sets at distance <= 1), self-loops included
        a = np.array([[float(min(abs(f - g) for f in clip(x, scale) for g in clip(y, scale)) <= 1)
                       for y in range(nodes)] for x in range(nodes)])
        degree = a.sum(1)
        expected = np.array([[a[x, y] / np.sqrt(degree[x] * degree[y]) for y in range(nodes)] for x in range(nodes)])
        got = intra_scale_adjacency(frames, scale)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
        assert torch.equal(got > 0, (torch.arange(nodes)[:, None] - torch.arange(nodes)).abs() <= scale)
        assert np.all(np.diag(a) == 1)
        if scale < frames:
            # eq. 7: N_y, the clips of scale i that share a frame with clip y of scale i+1
            shared = np.array([[bool(clip(x, scale) & clip(y, scale + 1)) for x in range(nodes)]
                               for y in range(nodes - 1)])
            np.testing.assert_array_equal(cross_scale_neighbours(frames, scale).numpy(), shared)
    block, neighbours = scale_graphs(frames, 4)
    sizes = [frames - i for i in range(4)]
    assert block.shape == (sum(sizes),) * 2 and len(neighbours) == 3
    start = sizes[0]
    np.testing.assert_allclose(block[start:start + sizes[1], start:start + sizes[1]], intra_scale_adjacency(frames, 2))
    assert block[:sizes[0], sizes[0]:].abs().sum() == 0  # no edge between scales in the GCN


def test_the_code_mask_differs_where_the_docstring_says():
    # scale 1 -> 2: node y of scale 2 (frames y, y+1) hears frames y and y+1; the public code's mask only frame y
    assert cross_scale_neighbours(16, 1)[3].nonzero().flatten().tolist() == [3, 4]


@pytest.mark.parametrize(("head", "num_answers", "shape"), [("count", 0, (4,)), ("choice", 0, (4, 5)),
                                                            ("open", 1, (4, 1))])
def test_any_video_length_gives_sixteen_slots(tmp_path, head, num_answers, shape):
    batch = sampled_batch(tmp_path, "mspan", [1, 5, 16, 50], head=head)  # T = 1, T < 16, T = 16, T > 35
    assert batch.app_global.shape == (4, FRAMES, DIM) and bool(batch.video_mask.all())
    assert batch.steps[0].tolist() == [0.0] * FRAMES and batch.steps[1, :4].tolist() == [0.0] * 4
    model = make_model(head, num_answers).eval()
    with torch.no_grad():
        output = model(batch)
    assert output.shape == shape and torch.isfinite(output).all()


def test_reader_repeats_the_steps_of_a_short_video(tmp_path):
    # h5py reads strictly increasing indices only; fixed_sample repeats every step of a short video
    from extract.masn_index import index_paths
    from extract.videoqa.data import FeatureReader
    from extract.videoqa.registry import fixed_sample

    arrays = write_features(tmp_path / "feat", "tgif", {"v": 5})
    reader = FeatureReader(index_paths(tmp_path / "feat", "tgif"))
    steps = fixed_sample(5, FRAMES)
    features = reader.read("v", steps)
    reader.close()
    for name, array in arrays["v"].items():
        np.testing.assert_array_equal(features[name], array[steps])


def test_refuses_padded_or_too_short_batches():
    model = make_model("count").eval()
    with pytest.raises(ValueError, match="unpadded"):
        model(make_batch([16, 9]))
    with pytest.raises(ValueError, match="at least 4 steps"):
        model(make_batch([3, 3]))


@pytest.mark.parametrize(("head", "candidates", "num_answers", "threshold"), [
    ("count", 1, 0, 0.05),  # MSE; targets 1..10 start at ~30
    ("choice", 5, 0, 0.05),  # hinge; 1.0 with equal scores
    ("open", 1, 6, 0.05),  # cross-entropy; ln 6 = 1.8 at the start
])
def test_overfits_a_tiny_subset(head, candidates, num_answers, threshold):
    batch = with_targets(make_batch([FRAMES] * 8, candidates=candidates, seed=1), head, num_answers=num_answers)
    losses = overfit(make_model(head, num_answers), batch, steps=150, lr=3e-3)
    assert losses[-1] < threshold < losses[0], (losses[0], losses[-1])


def trainer_config(tmp_path, **overrides) -> TrainConfig:
    settings = dict(dataset="tgif", task="frameqa", feat_dir=tmp_path / "feat", out_dir=tmp_path / "out",
                    random_embeddings=True, word_dim=WORD, epochs=2, patience=None, batch_size=4, lr=3e-3,
                    num_workers=0, progress="none", arch="mspan", model=TINY)
    return TrainConfig(**(settings | overrides))


@pytest.mark.parametrize("task", ["frameqa", "action"])
def test_checkpoint_reloads_to_the_same_predictions(tmp_path, task):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 + 7 * k for k in range(8)})
    make = {"frameqa": lambda k: frameqa(str(k), f"q{k}", "cat" if k % 2 else "dog", "train"),
            "action": lambda k: action(str(k), f"q{k}", k % 5, "train")}[task]
    splits = {"train": [make(k) for k in range(6)], "val": [make(6), make(7)]}
    model = TINY.model_copy(update={"standardize_features": task == "frameqa"})
    checkpoint = train(trainer_config(tmp_path, task=task, model=model), splits)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["arch"] == "mspan" and run["max_video_steps"] == FRAMES
    reloaded, saved = load_checkpoint(checkpoint)
    assert isinstance(reloaded, MSPAN) and saved["config"]["model"]["scales"] == 4
    evaluate(checkpoint, splits["val"], feat_dir=tmp_path / "feat", out=tmp_path / "val.json", device="cpu")
    assert json.loads((tmp_path / "val.json").read_text()) == \
        json.loads((tmp_path / "out" / "predictions_val.json").read_text())
    if task == "frameqa":  # the statistics of the training videos travel in the checkpoint
        assert reloaded.feature_std.shape == (2 * DIM,) and not torch.all(reloaded.feature_std == 1)


def test_cli_trains_an_epoch_and_evaluates(tmp_path):
    from typer.testing import CliRunner

    from extract.cli import app
    from extract.videoqa.metrics import evaluate_predictions

    train_demo_cli(tmp_path, "Count", "-o", "node_dim=16", "-o", "scales=4", "-o", "iterations=1",
                   "-o", "lstm_layers=1", model="mspan")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["arch"] == "mspan" and run["epochs_run"] == 1 and run["config"]["model"]["node_dim"] == 16
    predictions = tmp_path / "out" / "predictions_test.json"
    result = CliRunner().invoke(app, ["evaluate", "demo", "--predictions", str(predictions)])
    assert result.exit_code == 0, result.output
    assert "Count" in result.output
    assert evaluate_predictions(predictions, "demo") == run["test"]
