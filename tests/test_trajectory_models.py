"""HGA and trajectory_hg on batches read from NExT-QA-layout files written here: shapes with 0, 1
and many trajectories, masks that really mask, overfitting a tiny subset, BERT-FT input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from extract.datasets import load_dataset
from extract.videoqa.data import build_examples
from extract.videoqa.losses import multiple_choice_hinge_loss
from extract.videoqa.models import hga, trajectory_hg
from extract.videoqa.sources.nextqa import BertFeatures, NextqaDataset, NextqaFeatureReader, collate_nextqa
from extract.videoqa.vocab import WordVocab
from nextqa_export import CLIP_DIM, LABELS, TRAJ_DIM, write_annotations, write_bert, write_export

WORD = 12


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(name: str, vocab: int, text_dim: int = 0, **config):
    torch.manual_seed(0)
    if name == "hga":
        cfg = hga.ModelConfig(hidden_size=16, fusion_dim=32, **config)
        return hga.HGA(cfg, vocab_size=vocab, word_dim=WORD, appearance_dim=CLIP_DIM, motion_dim=CLIP_DIM,
                       head="choice", text_dim=text_dim, trajectory_dim=TRAJ_DIM)
    cfg = trajectory_hg.ModelConfig(hidden_size=16, mhsa_heads=2, mcb_dim=64, **config)
    return trajectory_hg.TrajectoryHG(cfg, vocab_size=vocab, word_dim=WORD, appearance_dim=CLIP_DIM,
                                      motion_dim=CLIP_DIM, head="choice", text_dim=text_dim, trajectory_dim=TRAJ_DIM)


def load_batch(tmp_path, trajectories: dict[str, int], questions_per_video: int = 1, bert: bool = False):
    write_export(tmp_path / "feat", "train", trajectories)
    rows = write_annotations(tmp_path / "ann", {"train": dict.fromkeys(trajectories, questions_per_video)})
    questions = load_dataset("nextqa", tmp_path / "ann").questions("train")
    words = WordVocab.build([*(t for q in questions for t in (q.question, *q.candidates)), *LABELS])
    examples = build_examples(questions, head="choice", words=words, answers=None, max_tokens=20, text_rows=bert)
    features = None
    if bert:
        write_bert(tmp_path / "bert", "train", len(rows["train"]))
        features = BertFeatures(tmp_path / "bert", ["train"])
    dataset = NextqaDataset(examples, NextqaFeatureReader(tmp_path / "feat"), words=words, max_steps=16, bert=features)
    return collate_nextqa([dataset[i] for i in range(len(dataset))]), len(words)


@pytest.mark.parametrize("name", ["hga", "trajectory_hg"])
@pytest.mark.parametrize("counts", [[0], [1], [0, 1, 6]])
def test_scores_one_per_candidate_with_0_1_and_many_trajectories(tmp_path, name, counts):
    batch, vocab = load_batch(tmp_path, {f"v{i}": n for i, n in enumerate(counts)})
    model = make_model(name, vocab)
    scores = model(batch)
    assert scores.shape == (len(counts), 5) and torch.isfinite(scores).all()
    loss = multiple_choice_hinge_loss(scores, batch.targets.long())
    loss.backward()  # a video without trajectories trains too
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["hga", "trajectory_hg"])
def test_padded_trajectory_slots_and_padded_tokens_change_nothing(tmp_path, name):
    batch, vocab = load_batch(tmp_path, {"v0": 0, "v1": 2, "v2": 5})
    model = make_model(name, vocab).eval()
    g = torch.Generator().manual_seed(3)
    pad_traj = ~batch.traj_mask  # [B, N]
    tokens_pad = torch.arange(batch.tokens.shape[2])[None, None, :] >= batch.lengths[..., None]  # [B, C, L]
    assert pad_traj.any() and tokens_pad.any()
    label_pad = torch.arange(batch.traj_label_tokens.shape[2])[None, None, :] >= batch.traj_label_lengths[..., None]
    changed = replace(
        batch,
        traj_feat=torch.where(pad_traj[..., None], torch.randn(batch.traj_feat.shape, generator=g) * 5, batch.traj_feat),
        traj_span=torch.where(pad_traj[..., None], torch.rand(batch.traj_span.shape, generator=g), batch.traj_span),
        traj_label_tokens=torch.where(label_pad, torch.randint(2, vocab, batch.traj_label_tokens.shape, generator=g),
                                      batch.traj_label_tokens),
        tokens=torch.where(tokens_pad, torch.randint(2, vocab, batch.tokens.shape, generator=g), batch.tokens),
    )
    with torch.no_grad():
        torch.testing.assert_close(model(changed), model(batch), rtol=1e-5, atol=1e-5)
        # and the real slots are read: trajectory_hg changes when a real trajectory does
        if name == "trajectory_hg":
            real = replace(batch, traj_feat=batch.traj_feat + 3 * batch.traj_mask[..., None])
            assert not torch.allclose(model(real), model(batch))


@pytest.mark.parametrize("name", ["hga", "trajectory_hg"])
def test_each_model_overfits_a_tiny_subset(tmp_path, name):
    batch, vocab = load_batch(tmp_path, {"v0": 0, "v1": 2, "v2": 3, "v3": 1}, questions_per_video=2)
    model = make_model(name, vocab, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    targets = batch.targets.long()
    for _ in range(150):
        loss = multiple_choice_hinge_loss(model(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert (model(batch).argmax(dim=1) == targets).all()
    assert loss.item() < 0.1


@pytest.mark.parametrize("name", ["hga", "trajectory_hg"])
def test_bert_features_go_through_a_linear_layer_first(tmp_path, name):
    batch, vocab = load_batch(tmp_path, {"v0": 0, "v1": 3}, bert=True)
    model = make_model(name, vocab, text_dim=10).eval()
    assert model.text.bert.in_features == 10 and model.text.bert.out_features == WORD
    with torch.no_grad():
        scores = model(batch)
        assert scores.shape == (2, 5)
        # the word tokens are not read in BERT mode; the text features are
        assert torch.equal(model(replace(batch, tokens=torch.ones_like(batch.tokens))), scores)
        assert not torch.allclose(model(replace(batch, text_feat=batch.text_feat * 2)), scores)


def test_trajectory_hg_refuses_a_batch_without_trajectories(tmp_path):
    batch, vocab = load_batch(tmp_path, {"v0": 1})
    with pytest.raises(ValueError, match="needs trajectories"):
        make_model("trajectory_hg", vocab)(replace(batch, traj_feat=None))


def test_question_only_hga_reads_no_video(tmp_path):
    batch, vocab = load_batch(tmp_path, {"v0": 0, "v1": 2, "v2": 5})
    model = make_model("hga", vocab, question_only=True).eval()
    g = torch.Generator().manual_seed(4)
    changed = replace(batch, app_global=torch.randn(batch.app_global.shape, generator=g),
                      mot_global=torch.randn(batch.mot_global.shape, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(model(changed), model(batch))
    assert model.video is None and model(batch).shape == (3, 5)
