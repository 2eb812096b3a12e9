"""`extract train hga|trajectory_hg` end to end on NExT-QA-layout annotations and an export directory
written here: outputs, predictions the NExT-QA evaluator reads, checkpoints that reload to the same
predictions, augmentation only in training, BERT-FT, and the trainer's refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from extract.cli import app
from extract.datasets import load_dataset
from extract.videoqa.evaluate import evaluate, load_checkpoint
from extract.videoqa.metrics import evaluate_nextqa, read_predictions
from extract.videoqa.models import hga, trajectory_hg
from extract.videoqa.train import TrainConfig, train
from nextqa_export import write_annotations, write_bert, write_export

SPLITS = {"train": {"t0": 3, "t1": 2, "t2": 3, "t3": 2}, "val": {"v0": 2, "v1": 3}, "test": {"s0": 2, "s1": 1}}
TRAJECTORIES = {"train": {"t0": 0, "t1": 1, "t2": 4, "t3": 2}, "val": {"v0": 0, "v1": 3}, "test": {"s0": 2, "s1": 0}}
TINY = {"hga": {"hidden_size": 16, "fusion_dim": 32}, "trajectory_hg": {"hidden_size": 16, "mhsa_heads": 2, "mcb_dim": 64}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def layout(tmp_path):
    write_annotations(tmp_path / "ann", SPLITS)
    for split, videos in TRAJECTORIES.items():
        write_export(tmp_path / "export", split, videos, seed=len(split))
    return tmp_path


def config(root, arch: str, **overrides) -> TrainConfig:
    settings = dict(arch=arch, dataset="nextqa", data_root=root / "ann", feat_dir=root / "export",
                    out_dir=root / "run", random_embeddings=True, word_dim=8, epochs=2, patience=None,
                    batch_size=4, num_workers=0, progress="none", device="cpu", model=TINY[arch])
    return TrainConfig.model_validate(settings | overrides)


@pytest.mark.parametrize("arch", ["hga", "trajectory_hg"])
def test_cli_writes_a_run_the_nextqa_evaluator_reads(layout, arch):
    options = [item for name, value in TINY[arch].items() for item in ("-o", f"{name}={value}")]
    result = CliRunner().invoke(app, [
        "train", arch, "--dataset", "nextqa", "--data-root", str(layout / "ann"), "--feat-dir",
        str(layout / "export"), "--out-dir", str(layout / "run"), "--random-embeddings", "--epochs", "1",
        "--augment", "a-,qa-", "--device", "cpu", *options,
    ])
    assert result.exit_code == 0, result.output
    run_dir = layout / "run"
    assert {"checkpoint.pt", "run.json", "predictions_val.json", "predictions_test.json"} <= {
        p.name for p in run_dir.iterdir()}
    run = json.loads((run_dir / "run.json").read_text())
    assert run["arch"] == arch and run["augment"] == {"strategies": ["a-", "qa-"], "negatives": 5}
    assert run["batch_size"] == 64 and run["lr"] == (1e-4 if arch == "hga" else 5e-5)
    assert run["config"]["max_question_tokens"] == 37
    assert run["trajectories"] is True and run["questions"] == {"train": 10, "val": 5, "test": 3}
    for split in ("val", "test"):
        evaluated = CliRunner().invoke(app, ["evaluate", "nextqa", "--predictions", str(run_dir / f"predictions_{split}.json"),
                                             "--annotations", str(layout / "ann" / f"{split}.csv")])
        assert evaluated.exit_code == 0, evaluated.output
        assert "All" in evaluated.output
        predictions = read_predictions(run_dir / f"predictions_{split}.json")
        assert all(0 <= entry["prediction"] < 5 for entry in predictions.values())  # original candidates only
    assert evaluate_nextqa(run_dir / "predictions_test.json", layout / "ann" / "test.csv") == run["test"]


@pytest.mark.parametrize("arch", ["hga", "trajectory_hg"])
def test_checkpoint_reloads_to_the_same_predictions(layout, arch):
    checkpoint = train(config(layout, arch, augment={"strategies": ["qa-"], "negatives": 2}))
    model, ckpt = load_checkpoint(checkpoint)
    assert ckpt["arch"] == arch and isinstance(model, hga.HGA if arch == "hga" else trajectory_hg.TrajectoryHG)
    val = load_dataset("nextqa", layout / "ann").questions("val")
    evaluate(checkpoint, val, feat_dir=layout / "export", out=layout / "again.json", device="cpu")
    assert read_predictions(layout / "again.json") == read_predictions(layout / "run" / "predictions_val.json")


def test_bert_features_train_hga_with_qa_augmentation(layout):
    for split, videos in SPLITS.items():
        write_bert(layout / "bert", split, sum(videos.values()), dim=10, seed=len(split))
    checkpoint = train(config(layout, "hga", bert_dir=layout / "bert", augment={"strategies": ["qa-"]}))
    run = json.loads((layout / "run" / "run.json").read_text())
    assert run["text_features"] == "bert" and run["lr"] == 5e-5  # NExT-QA's HGA with BERT-FT
    model, ckpt = load_checkpoint(checkpoint)
    assert ckpt["model_args"]["text_dim"] == 10 and model.text.bert.in_features == 10
    val = load_dataset("nextqa", layout / "ann").questions("val")
    evaluate(checkpoint, val, feat_dir=layout / "export", out=layout / "again.json", device="cpu")
    assert read_predictions(layout / "again.json") == read_predictions(layout / "run" / "predictions_val.json")
    with pytest.raises(ValueError, match="a- needs word tokens"):
        train(config(layout, "hga", bert_dir=layout / "bert", augment={"strategies": ["a-"]}, overwrite=True))


def test_refusals(layout, tmp_path_factory):
    bare = tmp_path_factory.mktemp("bare")
    write_export(bare, "all", {key: 1 for videos in SPLITS.values() for key in videos}, with_trajectories=False)
    with pytest.raises(ValueError, match="reads trajectories, but .* has no traj_feat"):
        train(config(layout, "trajectory_hg", feat_dir=bare))
    checkpoint = train(config(layout, "hga", feat_dir=bare, epochs=1))  # HGA needs no trajectories
    assert json.loads((checkpoint.parent / "run.json").read_text())["trajectories"] is False
    with pytest.raises(ValueError, match="augmentation adds negative candidates: it needs a multiple-choice head"):
        TrainConfig.model_validate(dict(arch="masn", dataset="tgif", task="count", feat_dir=bare, out_dir=bare,
                                        augment={"strategies": ["a-"]}))
    with pytest.raises(ValueError, match="model 'hga' has no count head"):
        TrainConfig.model_validate(dict(arch="hga", dataset="tgif", task="count", feat_dir=bare, out_dir=bare))


def test_demo_mc_is_a_nextqa_format_choice_dataset():
    from extract.videoqa.metrics import summarize
    from extract.videoqa.tasks import head_for

    assert head_for("demo-mc", None) == "choice"
    assert set(summarize([{"task": "TP", "prediction": 1, "answer": 1}], "demo-mc")) >= {"TN", "All"}
