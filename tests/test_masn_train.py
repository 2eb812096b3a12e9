"""The MASN trainer end to end on feature files written here with plain h5py in the original MASN
layout: reading and uniform sampling, overfitting a tiny subset, model selection on validation only,
checkpoints, out-of-vocabulary answers, batches of one, and the outputs of a run."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from extract.datasets.base import Question
from extract.videoqa.data import FeatureReader, MasnDataset, build_examples, uniform_sample
from extract.videoqa.evaluate import evaluate, load_checkpoint
from extract.masn_index import MASN_INDEX_FILES, index_paths
from extract.videoqa.metrics import evaluate_nextqa
from extract.videoqa.models.masn import ModelConfig
from extract.videoqa.train import TrainConfig, train
from extract.videoqa.vocab import WordVocab
from videoqa_helpers import DIM, OBJECTS, action, count, frameqa, jsonl, train_demo_cli, write_features  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

def config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = dict(
        dataset="tgif", task="frameqa", feat_dir=tmp_path / "feat", out_dir=tmp_path / "out",
        random_embeddings=True, word_dim=8, epochs=1, patience=None, batch_size=4, lr=3e-3,
        num_workers=0, progress="none", seed=0,
        model=ModelConfig(hidden_size=16, location_dim=8, dropout=0.0),
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def test_reader_follows_links_and_samples_long_videos_uniformly(tmp_path):
    arrays = write_features(tmp_path / "feat", "tgif", {"7": 50, "8": 4}, link_global=True)
    reader = FeatureReader(index_paths(tmp_path / "feat", "tgif"))
    assert reader.dims("7") == (DIM, DIM, OBJECTS)
    questions = [count("7", "1", 2, "train"), count("8", "2", 3, "train")]
    words = WordVocab.build(q.question for q in questions)
    examples = build_examples(questions, head="count", words=words, answers=None, max_tokens=20)
    dataset = MasnDataset(examples, reader, max_steps=10)

    _, steps, features = dataset[0]
    assert steps.tolist() == uniform_sample(50, 10).tolist() == list(range(2, 50, 5))  # spread, not the first 10
    for name, array in features.items():
        np.testing.assert_array_equal(array, arrays["7"][name][steps])
    _, steps, features = dataset[1]
    assert steps.tolist() == [0, 1, 2, 3] and features["app_objects"].shape == (4, OBJECTS, DIM)
    reader.close()


def test_overfits_a_tiny_subset(tmp_path):
    keys = [str(k) for k in range(10)]
    write_features(tmp_path / "feat", "tgif", {k: 3 + int(k) % 4 for k in keys})
    answers = ["cat", "dog", "ball", "car"]
    train_qs = [frameqa(k, f"t{k}", answers[int(k) % 4], "train") for k in keys[:8]]
    val_qs = [frameqa(k, f"v{k}", answers[int(k) % 4], "train") for k in keys[8:]]
    cfg = config(tmp_path, epochs=30, batch_size=8, lr=5e-3,
                 model=ModelConfig(hidden_size=32, location_dim=8, dropout=0.0))
    train(cfg, {"train": train_qs, "val": val_qs})
    history = jsonl(tmp_path / "out" / "metrics.jsonl")
    assert history[0]["train_loss"] > 1.0  # about ln 4 at the start
    assert history[-1]["train_loss"] < 0.05
    assert history[-1]["train_accuracy"] == 100.0


def test_selects_the_best_validation_epoch_and_reads_test_only_after_training(tmp_path, monkeypatch):
    lengths = {f"tr{i}": 4 for i in range(12)} | {f"va{i}": 5 for i in range(6)} | {f"te{i}": 3 for i in range(3)}
    write_features(tmp_path / "feat", "tgif", lengths)
    splits = {
        "train": [action(f"tr{i}", f"q{i}", i % 5, "train") for i in range(12)],
        "val": [action(f"va{i}", f"v{i}", (i + 2) % 5, "train") for i in range(6)],
        "test": [action(f"te{i}", f"t{i}", i % 5, "test") for i in range(3)],
    }
    touched: list[str] = []
    for method in ("read", "has", "length"):
        original = getattr(FeatureReader, method)

        def spy(self, key, *args, _original=original):
            touched.append(key)
            return _original(self, key, *args)

        monkeypatch.setattr(FeatureReader, method, spy)
    checkpoint = train(config(tmp_path, task="action", epochs=6, lr=1e-2), splits)
    monkeypatch.undo()

    # the test split is touched only after the last training or validation read, by one pass
    first_test = min(i for i, key in enumerate(touched) if key.startswith("te"))
    assert all(not key.startswith("te") for key in touched[:first_test])
    assert not any(key.startswith(("tr", "va")) for key in touched[first_test:])

    history = jsonl(tmp_path / "out" / "metrics.jsonl")
    accuracies = [h["val_accuracy"] for h in history]
    best = accuracies.index(max(accuracies)) + 1  # the first epoch reaching the best validation accuracy
    assert [h["epoch"] for h in history if h["selected"]][-1] == best
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == best
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["selected_epoch"] == best and run["test"] is not None

    # the checkpoint reproduces the validation accuracy and predictions of the selected epoch
    metrics = evaluate(checkpoint, splits["val"], feat_dir=tmp_path / "feat", out=tmp_path / "val.json", device="cpu")
    assert metrics["Action"] == pytest.approx(accuracies[best - 1])
    assert json.loads((tmp_path / "val.json").read_text()) == \
        json.loads((tmp_path / "out" / "predictions_val.json").read_text())


def test_checkpoint_is_a_weights_only_state_dict_with_its_config(tmp_path):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 for k in range(6)})
    qs = [count(str(k), f"c{k}", 1 + k % 3, "train") for k in range(6)]
    path = train(config(tmp_path, task="count"), {"train": qs[:4], "val": qs[4:]})
    saved = torch.load(path, weights_only=True)
    assert saved["config"]["model"]["hidden_size"] == 16 and saved["config"]["task"] == "count"
    assert saved["model_args"]["appearance_dim"] == DIM  # read from the feature files
    assert all(isinstance(t, torch.Tensor) for t in saved["state_dict"].values())
    model, _ = load_checkpoint(path)
    assert model.head_kind == "count" and not model.training


@pytest.mark.parametrize("task", ["count", "action", "frameqa"])
def test_final_batches_of_one_question(tmp_path, task):
    write_features(tmp_path / "feat", "tgif", {str(k): 2 + k for k in range(7)})
    make = {"count": lambda k, s: count(str(k), f"q{k}", 2, s),
            "action": lambda k, s: action(str(k), f"q{k}", k % 5, s),
            "frameqa": lambda k, s: frameqa(str(k), f"q{k}", "cat" if k % 2 else "dog", s)}[task]
    # 5 training questions in batches of 4 and 1 validation question: both passes end on a batch of one
    splits = {"train": [make(k, "train") for k in range(5)], "val": [make(5, "train")], "test": [make(6, "test")]}
    train(config(tmp_path, task=task, epochs=2), splits)
    history = jsonl(tmp_path / "out" / "metrics.jsonl")
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)


def test_unknown_test_answers_count_as_wrong_and_test_words_stay_out(tmp_path):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 for k in range(8)})
    splits = {
        "train": [frameqa(str(k), f"q{k}", "cat" if k % 2 else "dog", "train") for k in range(5)],
        "val": [frameqa("5", "q5", "cat", "train")],
        "test": [frameqa("6", "q6", "zebra", "test", question="what animal is in the zoo"),
                 frameqa("7", "q7", "cat", "test")],
    }
    checkpoint = train(config(tmp_path), splits)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["answers"] == ["dog", "cat"]  # training answers only, most frequent first
    assert "zoo" not in saved["words"] and "animal" not in saved["words"]
    predictions = json.loads((tmp_path / "out" / "predictions_test.json").read_text())
    assert predictions["6_q6"]["answer"] == "zebra" and predictions["6_q6"]["prediction"] in ("cat", "dog")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["vocabulary"]["answers_without_class"]["test"] == 1
    assert run["test"]["FrameQA"] == (50.0 if predictions["7_q7"]["prediction"] == "cat" else 0.0)


def test_run_outputs_and_carved_validation(tmp_path):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 for k in range(30)})
    qs = [count(str(k), f"c{k}", 1 + k % 4, "train") for k in range(30)]
    train(config(tmp_path, task="count", epochs=2, progress="log"), {"train": qs})
    out = tmp_path / "out"
    run = json.loads((out / "run.json").read_text())
    assert run["validation"].startswith("carved from train")
    assert run["random_word_vectors"] is True and run["word_vectors"]["source"] == "random"
    val_videos = {key.rsplit("_", 1)[0] for key in json.loads((out / "predictions_val.json").read_text())}
    assert val_videos and len(val_videos) + run["questions"]["train"] == 30  # one question per video here
    history = jsonl(out / "metrics.jsonl")
    assert [h["epoch"] for h in history] == [1, 2] and "val_mse" in history[0] and "Count" in history[0]["val"]
    assert Image.open(out / "metrics.png").size[0] > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        train(config(tmp_path, task="count"), {"train": qs})


def test_msvd_layout_and_nextqa_evaluation(tmp_path):
    write_features(tmp_path / "feat", "msvd", {f"vid{k}": 3 for k in range(6)})
    words = ["what", "who", "how"]
    qs = [Question(f"vid{k}", str(k), f"{words[k % 3]} is the man doing", "cook" if k % 2 else "run", words[k % 3],
                   "train") for k in range(6)]
    train(config(tmp_path, dataset="msvd", task=None), {"train": qs[:4], "val": qs[4:5], "test": qs[5:]})
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert list(run["test"]) == ["what", "who", "how", "when", "where", "All"]

    nextqa_dir = tmp_path / "nextqa"
    write_features(nextqa_dir / "feat", "nextqa", {str(1000 + k): 4 for k in range(6)})
    types = ["CW", "TN", "DL", "TP", "CH", "DO"]
    nqs = [Question(str(1000 + k), str(k), "why did the boy run", str(k % 5), types[k], "train",
                    candidates=("play", "hide", "eat", "fall", "sing")) for k in range(6)]
    train(config(nextqa_dir, dataset="nextqa", task=None), {"train": nqs[:3], "val": nqs[3:4], "test": nqs[4:]})
    annotations = nextqa_dir / "test.csv"
    annotations.write_text("video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n" + "".join(
        f"{q.key},100,640,480,{q.question},{q.answer},{q.qid},{q.task},{','.join(q.candidates)}\n" for q in nqs[4:]))
    run = json.loads((nextqa_dir / "out" / "run.json").read_text())
    assert evaluate_nextqa(nextqa_dir / "out" / "predictions_test.json", annotations) == run["test"]


def test_trains_from_the_dataset_adapter_and_evaluates_a_split(tmp_path):
    from extract.datasets import load_dataset
    from extract.videoqa.evaluate import evaluate_checkpoint

    root = tmp_path / "demo"
    videos = load_dataset("demo", root).videos  # generates the synthetic TGIF-format dataset
    write_features(tmp_path / "feat", "demo", {video.key: 4 for video in videos})
    checkpoint = train(config(tmp_path, dataset="demo", task="frameqa", data_root=root))
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["validation"].startswith("carved") and run["questions"]["test"] > 0
    metrics = evaluate_checkpoint(checkpoint, data_root=root, feat_dir=tmp_path / "feat", split="test", device="cpu")
    assert metrics == run["test"]
    assert json.loads((tmp_path / "out" / "predictions_test.json").read_text())


def test_question_only_baseline_is_recorded_and_reloads(tmp_path):
    write_features(tmp_path / "feat", "tgif", {str(k): 3 for k in range(8)})
    splits = {
        "train": [frameqa(str(k), f"q{k}", "cat" if k % 2 else "dog", "train") for k in range(5)],
        "val": [frameqa("5", "q5", "cat", "train")],
        "test": [frameqa("6", "q6", "dog", "test"), frameqa("7", "q7", "cat", "test")],
    }
    cfg = config(tmp_path, epochs=2, model=ModelConfig(hidden_size=16, location_dim=8, dropout=0.0,
                                                        question_only=True))
    checkpoint = train(cfg, splits)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["question_only"] is True and run["config"]["model"]["question_only"] is True
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["config"]["model"]["question_only"] is True
    assert not any(name.startswith(("appearance.", "motion.")) for name in saved["state_dict"])
    model, _ = load_checkpoint(checkpoint)
    assert model.question_only and model.appearance is None
    # the same question about two different videos gets the same answer
    predictions = json.loads((tmp_path / "out" / "predictions_test.json").read_text())
    assert predictions["6_q6"]["prediction"] == predictions["7_q7"]["prediction"]


def test_cli_trains_the_question_only_baseline(tmp_path):
    _, result = train_demo_cli(tmp_path, "FrameQA", "--question-only")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["question_only"] is True and run["config"]["model"]["hidden_size"] == 16
    assert "FrameQA" in result.output  # the test table is printed


def test_cli_standardize_features_reaches_the_checkpoint(tmp_path):
    from extract.datasets import load_dataset
    from extract.videoqa.data import carve_validation, feature_statistics
    from extract.videoqa.tasks import select_questions

    root, _ = train_demo_cli(tmp_path, "Count", "--standardize-features")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["config"]["model"]["standardize_features"] is True
    # the checkpoint carries the statistics of the training videos: Train_* minus the carved validation
    count_qs = select_questions(load_dataset("demo", root).questions("train"), "demo", "count")
    train_qs, _ = carve_validation(count_qs, 0.1)
    reader = FeatureReader(index_paths(tmp_path / "feat", "demo"))
    stats = feature_statistics(reader, sorted({q.key for q in train_qs}))
    reader.close()
    model, _ = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    np.testing.assert_allclose(model.motion.global_mean.numpy(), stats["mot_global"][0])
    np.testing.assert_allclose(model.appearance.object_std.numpy(), stats["app_objects"][1])


def test_feature_statistics_and_a_standardized_run(tmp_path):
    from extract.videoqa.data import feature_statistics

    arrays = write_features(tmp_path / "feat", "tgif", {str(k): 3 + k % 2 for k in range(8)})
    reader = FeatureReader(index_paths(tmp_path / "feat", "tgif"))
    with h5py.File(tmp_path / "feat" / MASN_INDEX_FILES["tgif"].appearance_objects, "a") as f:
        f["image_features/0"][0, -1] = 0.0  # a padding row (fewer detections than N): left out of the statistics
    arrays["0"]["app_objects"][0, -1] = 0.0
    stats = feature_statistics(reader, ["0", "1", "2"])
    for name, (mean, std) in stats.items():
        rows = np.concatenate([arrays[k][name].reshape(-1, DIM) for k in ("0", "1", "2")]).astype(np.float64)
        rows = rows[np.any(rows != 0, axis=1)]
        np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(std, rows.std(0), rtol=1e-5, atol=1e-6)
    reader.close()

    splits = {"train": [frameqa(str(k), f"q{k}", "cat" if k % 2 else "dog", "train") for k in range(6)],
              "val": [frameqa("6", "q6", "cat", "train"), frameqa("7", "q7", "dog", "train")]}
    cfg = config(tmp_path, epochs=2, model=ModelConfig(hidden_size=16, location_dim=8, dropout=0.0,
                                                        standardize_features=True))
    checkpoint = train(cfg, splits)
    saved = torch.load(checkpoint, weights_only=True)
    train_stats = feature_statistics(FeatureReader(index_paths(tmp_path / "feat", "tgif")), [str(k) for k in range(6)])
    np.testing.assert_allclose(saved["state_dict"]["appearance.global_mean"].numpy(), train_stats["app_global"][0])
    np.testing.assert_allclose(saved["state_dict"]["motion.object_std"].numpy(), train_stats["mot_objects"][1])
    # the checkpoint alone (statistics included) reproduces the selected epoch's validation predictions
    evaluate(checkpoint, splits["val"], feat_dir=tmp_path / "feat", out=tmp_path / "val.json", device="cpu")
    assert json.loads((tmp_path / "val.json").read_text()) == \
        json.loads((tmp_path / "out" / "predictions_val.json").read_text())
