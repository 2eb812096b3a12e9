"""Helpers shared by the VideoQA tests: feature files in the original MASN layout written with plain
h5py, question makers, tiny batches, and the ``extract train`` CLI on the demo questions."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from extract.datasets.base import Question
from extract.masn_index import MASN_INDEX_FILES
from extract.videoqa.data import Batch

DIM, OBJECTS = 16, 3  # tiny stand-ins for 2048-d features and 10 objects


def write_features(feat_dir: Path, dataset: str, lengths: dict[str, int], *, seed: int = 0,
                   link_global: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Write the four MASN index files with plain h5py, as the original loaders expect them.

    With ``link_global`` the appearance-global datasets live in another file, reached by external links.
    """
    rng = np.random.default_rng(seed)
    names = MASN_INDEX_FILES[dataset]
    for name in names:
        (feat_dir / name).parent.mkdir(parents=True, exist_ok=True)
    arrays = {key: {
        "app_global": rng.normal(size=(t, DIM)).astype(np.float32),
        "mot_global": rng.normal(size=(t, DIM)).astype(np.float32),
        "app_objects": rng.normal(size=(t, OBJECTS, DIM)).astype(np.float32),
        "boxes": rng.uniform(size=(t, OBJECTS, 6)).astype(np.float32),
        "mot_objects": rng.normal(size=(t, OBJECTS, DIM)).astype(np.float32),
    } for key, t in lengths.items()}
    shard = feat_dir / "shard-00000.h5"
    with h5py.File(feat_dir / names.appearance_global, "w") as app_global, \
            h5py.File(feat_dir / names.motion_global, "w") as mot_global, \
            h5py.File(feat_dir / names.appearance_objects, "w") as app_objects, \
            h5py.File(feat_dir / names.motion_objects, "w") as mot_objects, \
            h5py.File(shard, "w") as shard_file:
        for key, a in arrays.items():
            if link_global:
                shard_file[f"resnet/{key}"] = a["app_global"]
                app_global[key] = h5py.ExternalLink(str(shard.resolve()), f"resnet/{key}")
            else:
                app_global[key] = a["app_global"]
            mot_global[key] = a["mot_global"]
            app_objects[f"image_features/{key}"] = a["app_objects"]
            app_objects[f"spatial_features/{key}"] = a["boxes"]
            mot_objects[key] = a["mot_objects"]
    return arrays


def frameqa(key: str, qid: str, answer: str, split: str, question: str = "what is on the table") -> Question:
    return Question(key=key, qid=qid, question=question, answer=answer, task="frameqa", split=split)


def action(key: str, qid: str, answer: int, split: str) -> Question:
    return Question(key=key, qid=qid, question="what does the man do 3 times", answer=str(answer), task="action",
                    split=split, candidates=("wave", "nod head", "jump", "clap hands", "spin"))


def count(key: str, qid: str, answer: int, split: str) -> Question:
    return Question(key=key, qid=qid, question="how many times does the man nod", answer=str(answer),
                    task="count", split=split)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_demo_cli(tmp_path, task: str, *flags: str, model: str = "masn"):
    """``extract train MODEL`` for one epoch on the demo questions with 3-step features; the
    demo's root and the CLI result."""
    from typer.testing import CliRunner

    from extract.cli import app
    from extract.datasets import load_dataset

    root = tmp_path / "demo"
    videos = load_dataset("demo", root).videos
    write_features(tmp_path / "feat", "demo", {video.key: 3 for video in videos})
    result = CliRunner().invoke(app, [
        "train", model, "--dataset", "demo", "--task", task, "--data-root", str(root),
        "--feat-dir", str(tmp_path / "feat"), "--out-dir", str(tmp_path / "out"), "--random-embeddings",
        "--epochs", "1", "--hidden-size", "16", "--device", "cpu", *flags,
    ])
    assert result.exit_code == 0, result.output
    return root, result


def make_batch(lengths: list[int], *, dim: int = DIM, objects: int = OBJECTS, vocab: int = 30, candidates: int = 1,
               tokens: int = 5, seed: int = 0) -> Batch:
    """A random padded batch whose videos have the given numbers of steps (token ids in 2..vocab-1)."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    pad = mask.float()
    return Batch(
        app_global=torch.randn(B, T, dim, generator=g) * pad[..., None],
        mot_global=torch.randn(B, T, dim, generator=g) * pad[..., None],
        app_objects=torch.randn(B, T, objects, dim, generator=g) * pad[..., None, None],
        mot_objects=torch.randn(B, T, objects, dim, generator=g) * pad[..., None, None],
        boxes=torch.rand(B, T, objects, 6, generator=g) * pad[..., None, None],
        steps=torch.arange(T).float()[None, :].expand(B, T) * pad,
        video_mask=mask,
        tokens=torch.randint(2, vocab, (B, candidates, tokens), generator=g),
        lengths=torch.full((B, candidates), tokens),
        targets=torch.zeros(B),
        index=torch.arange(B),
    )


def with_targets(batch: Batch, head: str, *, num_answers: int = 0, seed: int = 0) -> Batch:
    """``batch`` with random targets for ``head``: counts in 1..10, a right candidate, or an answer class."""
    g = torch.Generator().manual_seed(seed)
    B, C = batch.tokens.shape[:2]
    if head == "count":
        batch.targets = torch.randint(1, 11, (B,), generator=g).float()
    else:
        batch.targets = torch.randint(0, C if head == "choice" else num_answers, (B,), generator=g).float()
    return batch


def overfit(model: torch.nn.Module, batch: Batch, *, steps: int, lr: float) -> list[float]:
    """Adam steps on one fixed batch (dropout on, as in training); the training loss of every step."""
    from extract.videoqa.losses import head_loss

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = head_loss(model.head_kind, model(batch), batch.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def sampled_batch(tmp_path: Path, arch: str, lengths: list[int], *, head: str) -> Batch:
    """A batch read from feature files of videos with ``lengths`` steps, sampled by ``arch``'s registered rule."""
    from extract.masn_index import index_paths
    from extract.videoqa.data import FeatureReader, MasnDataset, build_examples, collate
    from extract.videoqa.registry import get_model_spec
    from extract.videoqa.vocab import AnswerVocab, WordVocab

    spec = get_model_spec(arch)
    write_features(tmp_path / "feat", "tgif", {str(k): t for k, t in enumerate(lengths)})
    make = {"count": lambda k: count(str(k), f"q{k}", 2, "train"),
            "choice": lambda k: action(str(k), f"q{k}", k % 5, "train"),
            "open": lambda k: frameqa(str(k), f"q{k}", "cat", "train")}[head]
    questions = [make(k) for k in range(len(lengths))]
    words = WordVocab.build(text for q in questions for text in (q.question, *q.candidates))
    answers = AnswerVocab.build([q.answer for q in questions], None) if head == "open" else None
    examples = build_examples(questions, head=head, words=words, answers=answers, max_tokens=20)
    reader = FeatureReader(index_paths(tmp_path / "feat", "tgif"))
    dataset = MasnDataset(examples, reader, max_steps=spec.max_steps("tgif"), sample=spec.sample)
    batch = collate([dataset[i] for i in range(len(dataset))])
    reader.close()
    return batch
