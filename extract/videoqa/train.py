"""Train a registered VideoQA model. Its registered source picks what it reads (``inputs``): the
original MASN layout (MASN, Seo et al., ACL 2021, sections 3.4 and 4.2: Adam, learning rate 1e-4, batch
32 for Count/FrameQA and 16 for Action/Trans.), or the ``extract export nextqa`` directory (``hga``,
``trajectory_hg``: clips, trajectories, optionally NExT-QA's BERT-FT text features), whose model configs
carry their papers' learning rate, batch size and reduce-on-plateau patience (``LR``, ``BATCH_SIZE``,
``PLATEAU_PATIENCE``). Multiple-choice training can add negatives (``augment``: a-, qa-).

One run trains one head: a TGIF-QA task (``count``, ``action``, ``transition``, ``frameqa``; the same
for the ``demo`` and ``folder`` datasets), MSVD-QA or MSRVTT-QA (open-ended), or NExT-QA (multiple
choice). The model is selected on the validation split -- the dataset's own, or for TGIF-format
datasets 10% of the training videos held out by a hash of their key -- and the test split, when
given, is read exactly once, after training, with the selected checkpoint.

``out_dir`` receives:
    checkpoint.pt           the selected epoch: state_dict, config, vocabularies (``weights_only`` loadable)
    metrics.jsonl           one line per epoch: losses, training and validation metrics
    metrics.png             the curves of metrics.jsonl
    predictions_val.json    validation predictions of the selected epoch
    predictions_test.json   test predictions of the selected checkpoint (when a test split is given)
    run.json                config, word vectors used, split sizes, selected epoch, test metrics, versions

``model.question_only`` trains the question-only baseline the same way (see ``model``); it is
recorded in the checkpoint's config and as ``question_only`` in run.json.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from extract.atomic import atomic_path, atomic_write
from extract.datasets.base import Question
from extract.progress import Reporter
from extract.videoqa.augment import Augmenter
from extract.videoqa.data import Batch, Head, build_examples, carve_validation, feature_statistics
from extract.features.runtime import resolve_device
from extract.videoqa.evaluate import CHECKPOINT_FORMAT, predict
from extract.videoqa.glove import WordVectors, load_glove, random_word_vectors
from extract.videoqa.inputs import make_source_loader, open_bert, open_reader
from extract.videoqa.losses import decide, head_loss
from extract.videoqa.metrics import format_table, selection_metric, summarize, write_predictions
from extract.videoqa.plot import plot_history
from extract.videoqa.registry import get_model_spec
from extract.videoqa.tasks import (
    default_answer_top_k,
    default_batch_size,
    default_max_steps,
    head_for,
    load_splits,
    select_questions,
    with_features,
)
from extract.videoqa.train_config import TrainConfig
from extract.videoqa.vocab import NO_CLASS, AnswerVocab, WordVocab

__all__ = ["TrainConfig", "train", "OUTPUT_FILES"]

log = logging.getLogger(__name__)

OUTPUT_FILES = ("checkpoint.pt", "metrics.jsonl", "metrics.png", "predictions_val.json",
                "predictions_test.json", "run.json")


def _word_vectors(config: TrainConfig, words: WordVocab) -> WordVectors:
    if config.glove is not None:
        return load_glove(config.glove, words.words, cache_dir=config.glove_cache_dir)
    return random_word_vectors(len(words), config.word_dim, seed=config.seed)


def _check_inputs(config: TrainConfig) -> None:
    """Refuse, before any work, a run without word vectors or one that would clobber an earlier run."""
    if config.glove is None and not config.random_embeddings:
        raise ValueError(f"{config.arch} needs word vectors: pass --glove PATH to a GloVe text file (e.g. "
                         "glove.840B.300d.txt from https://nlp.stanford.edu/projects/glove/), or --random-embeddings "
                         "for a smoke test (it is recorded in run.json)")
    if config.glove is not None and config.random_embeddings:
        raise ValueError("pass either --glove or --random-embeddings, not both")
    if config.glove is not None and not Path(config.glove).is_file():
        raise FileNotFoundError(f"--glove {config.glove}: no such file (a GloVe text file, e.g. glove.840B.300d.txt)")
    existing = [name for name in OUTPUT_FILES if (config.out_dir / name).exists()]
    if existing and not config.overwrite:
        raise FileExistsError(f"{config.out_dir} already holds the outputs of a run ({', '.join(existing)}); "
                              "choose another --out-dir, or pass --overwrite to replace them")


def _prepare_splits(config: TrainConfig,
                    splits: Mapping[str, Sequence[Question]]) -> tuple[dict[str, list[Question]], str]:
    """The questions of each split for this dataset/task, with a validation split carved from train if
    there is none; and a description of where the validation split came from."""
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown or "train" not in splits:
        raise ValueError(f"splits must be a mapping with 'train' and optionally 'val', 'test'; got {sorted(splits)}")
    chosen = {name: select_questions(questions, config.dataset, config.task) for name, questions in splits.items()}
    if not chosen["train"]:
        raise ValueError(f"no {config.dataset} {config.task or ''} question in the training split")
    if chosen.get("val"):
        return chosen, "dataset"
    chosen["train"], chosen["val"] = carve_validation(chosen["train"], config.val_fraction)
    if not chosen["val"]:
        raise ValueError("cannot hold out a validation split: the training questions cover a single video")
    return chosen, f"carved from train: {config.val_fraction:.0%} of the videos by key hash"


def _checkpoint(model: torch.nn.Module, config: TrainConfig, model_args: dict, words: WordVocab, answers: AnswerVocab | None,
                max_steps: int, epoch: int, val: dict, selection: tuple[str, float], vectors: WordVectors) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": config.arch,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "config": config.model_dump(mode="json"),
        "model_args": model_args,
        "max_steps": max_steps,
        "words": list(words.words),
        "answers": list(answers.answers) if answers else [],
        "epoch": epoch,
        "val": val,
        "selection": {"metric": selection[0], "value": selection[1]},
        "word_vectors": vectors.metadata(),
    }


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_json(obj, path: Path) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=str))


def _train_epoch(model: torch.nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
                 device: torch.device) -> tuple[float, float]:
    """One pass of gradient steps: mean loss, and accuracy (%) or Count MSE of the decisions made on the way."""
    model.train()
    head = model.head_kind
    loss_sum, right, squared, seen = 0.0, 0, 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        output = model(batch)
        loss = head_loss(head, output, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decided = decide(head, output.detach())  # [B]
        loss_sum += loss.item() * len(batch)
        seen += len(batch)
        if head == "count":
            squared += float(((decided.float() - batch.targets) ** 2).sum())
        else:
            right += int((decided == batch.targets.long()).sum())
    return loss_sum / seen, squared / seen if head == "count" else 100.0 * right / seen


def train(config: TrainConfig, splits: Mapping[str, Sequence[Question]] | None = None) -> Path:
    """Train ``config.arch`` and return the path of the selected checkpoint (``out_dir/checkpoint.pt``).

    splits: questions per split (``train``, optional ``val`` and ``test``); questions of other TGIF
        tasks are ignored. None loads them with ``extract.datasets.load_dataset(config.dataset,
        config.data_root)``.
    """
    started = time.time()
    _check_inputs(config)
    if splits is None:
        if config.data_root is None:
            raise ValueError("pass --data-root DIR so the questions can be loaded, or the question splits")
        splits = load_splits(config.dataset, config.data_root)
    report = Reporter(config.progress)
    head: Head = head_for(config.dataset, config.task)
    chosen, val_source = _prepare_splits(config, splits)

    spec = get_model_spec(config.arch)
    reader = open_reader(spec.source, config.feat_dir, config.dataset)
    if getattr(config.model, "TRAJECTORIES", False) and not reader.has_trajectories:
        raise ValueError(f"model {config.arch!r} reads trajectories, but {config.feat_dir} has no "
                         "traj_feat/traj_<split>.h5 (write them with `extract export nextqa`)")
    bert = open_bert(spec.source, config.bert_dir, sorted({q.split for qs in chosen.values() for q in qs}))
    for questions in chosen.values() if bert is not None else ():
        for split in {q.split for q in questions}:
            bert.check_rows(split, [q.row for q in questions if q.split == split and q.row is not None])
    missing: dict[str, int] = {}

    def keep_with_features(name: str) -> list[Question]:
        chosen[name], absent = with_features(chosen[name], reader)
        missing[name] = len(absent)
        if absent:
            report.line(f"{len(absent)} {name} videos have no features in {config.feat_dir} "
                        f"(e.g. {absent[0]}); their questions are left out", warning=True)
        return chosen[name]

    keep_with_features("train")
    keep_with_features("val")
    if not chosen["train"] or not chosen["val"]:
        raise ValueError(f"no training or validation question has features in {config.feat_dir}")
    dims = reader.dims(chosen["train"][0].key)

    train_qs, val_qs = chosen["train"], chosen["val"]
    label_names = reader.label_names(sorted({q.key for q in train_qs})) if spec.source == "nextqa" else []
    words = WordVocab.build([*(text for q in train_qs for text in (q.question, *q.candidates)), *label_names])
    answers = None
    if head == "open":
        top_k = config.answer_top_k or default_answer_top_k(config.dataset)
        answers = AnswerVocab.build((q.answer for q in train_qs), top_k)
    vectors = _word_vectors(config, words)
    if vectors.source == "random":
        report.line("RANDOM word vectors (--random-embeddings): a smoke test, not a result", warning=True)
    question_only = bool(getattr(config.model, "question_only", False))
    if question_only:
        report.line("QUESTION-ONLY baseline (--question-only): the video features are not used")

    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model_args = {"vocab_size": len(words), "word_dim": int(vectors.matrix.shape[1]), "appearance_dim": dims.appearance,
                  "motion_dim": dims.motion, "head": head, "num_answers": len(answers) if answers else 0}
    if spec.source == "nextqa":  # BERT-FT width (0: GloVe tokens) and trajectory feature width (0: none)
        model_args |= {"text_dim": bert.dim if bert is not None else 0, "trajectory_dim": dims.objects}
    model = spec.builder(config.model, **model_args)
    model.set_word_vectors(torch.from_numpy(vectors.matrix))
    if getattr(config.model, "standardize_features", False) and not question_only:
        stats = feature_statistics(reader, sorted({q.key for q in train_qs}))
        model.set_feature_statistics({name: tuple(map(torch.from_numpy, pair)) for name, pair in stats.items()})
        report.line("features standardized per channel with the statistics of the training videos")
    model.to(device)
    text = "bert" if bert is not None else "glove"
    lr = config.lr or getattr(config.model, "LR", {}).get(text, 1e-4)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                                 weight_decay=config.weight_decay)
    plateau = getattr(config.model, "PLATEAU_PATIENCE", None)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=plateau)
                 if plateau is not None else None)

    max_steps = config.max_video_steps or (spec.max_steps or default_max_steps)(config.dataset)
    batch_size = config.batch_size or getattr(config.model, "BATCH_SIZE", None) or default_batch_size(head)

    def examples(questions: list[Question]):
        return build_examples(questions, head=head, words=words, answers=answers,
                              max_tokens=config.max_question_tokens, text_rows=bert is not None)

    def loader(items, shuffle: bool, persistent: bool = True):
        return make_source_loader(spec.source, items, reader, words=words, max_steps=max_steps, sample=spec.sample,
                                  bert=bert, batch_size=batch_size, shuffle=shuffle, num_workers=config.num_workers,
                                  seed=config.seed, persistent=persistent)

    train_examples = examples(train_qs)
    augmenter = None
    if config.augment.strategies:
        augmenter = Augmenter(config.augment, train_qs, train_examples, words=words,
                              max_tokens=config.max_question_tokens, seed=config.seed, text_rows=bert is not None)
        report.line(f"sample augmentation {','.join(config.augment.strategies)}: {config.augment.negatives} "
                    "extra negatives each per training question, drawn afresh every epoch")
    train_loader, val_loader = loader(train_examples, True), loader(examples(val_qs), False)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    checkpoint_path, history_path = out / "checkpoint.pt", out / "metrics.jsonl"
    metric = "mse" if head == "count" else "accuracy"
    report.line(f"training {config.arch} on {config.dataset} {config.task or ''}: {len(train_qs)} train / {len(val_qs)} val "
                f"questions, head {head}, {dims}, device {device}")

    history: list[dict] = []
    best_epoch, best_score = None, float("-inf")
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        if augmenter is not None:  # fresh negatives each epoch; workers must see the new examples
            train_loader = loader(augmenter.examples_for_epoch(epoch), True, persistent=False)
        batches = report.iterate(train_loader, len(train_loader), f"epoch {epoch}/{config.epochs}")
        train_loss, train_metric = _train_epoch(model, batches, optimizer, device)
        val_records, val_loss = predict(model, val_loader, val_qs, answers=answers, device=device,
                                        progress=report.iterate)
        selection = selection_metric(val_records, head)
        if scheduler is not None:
            scheduler.step(selection[1])
        improved = selection[1] > best_score
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            f"train_{metric}": train_metric,
            "val_loss": val_loss,
            f"val_{metric}": -selection[1] if head == "count" else selection[1],
            "val": summarize(val_records, config.dataset),
            "selected": improved,
            "seconds": time.time() - epoch_start,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if improved:
            best_epoch, best_score = epoch, selection[1]
            _save(_checkpoint(model, config, model_args, words, answers, max_steps, epoch, entry["val"], selection,
                              vectors), checkpoint_path)
            write_predictions(val_records, out / "predictions_val.json")
        history.append(entry)
        with open(history_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        plot_history(history, out / "metrics.png", metric=metric, best_epoch=best_epoch)
        report.line(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, val loss {val_loss:.4f}, "
                    f"val {metric} {entry[f'val_{metric}']:.3f}" + (" (selected)" if improved else ""))
        if config.patience is not None and epoch - best_epoch >= config.patience:
            report.line(f"no validation gain for {config.patience} epochs: stopping after epoch {epoch}")
            break

    test_metrics = None
    # The first contact with the test split: after training, with the selected checkpoint.
    test_qs = keep_with_features("test") if chosen.get("test") else []
    if test_qs:
        model.load_state_dict(torch.load(checkpoint_path, map_location="cpu", weights_only=True)["state_dict"])
        test_records, _ = predict(model, loader(examples(test_qs), False, persistent=False), test_qs, answers=answers, device=device,
                                  progress=report.iterate)
        write_predictions(test_records, out / "predictions_test.json")
        test_metrics = summarize(test_records, config.dataset)
        report.line(format_table(test_metrics, title=f"test, {len(test_qs)} questions, epoch {best_epoch} checkpoint"))

    def without_class(questions: list[Question]) -> int:
        return sum(answers.index(q.answer) == NO_CLASS for q in questions) if answers else 0

    _write_json({
        "config": config.model_dump(mode="json"),
        "word_vectors": vectors.metadata(),
        "random_word_vectors": vectors.source == "random",
        "arch": config.arch,
        "question_only": question_only,
        "head": head,
        "feature_dims": dims._asdict(),
        "max_video_steps": max_steps,
        "batch_size": batch_size,
        "lr": lr,
        "text_features": text,
        "augment": config.augment.model_dump(mode="json"),
        "trajectories": bool(getattr(reader, "has_trajectories", False)),
        "validation": val_source,
        "questions": {name: len(questions) for name, questions in chosen.items()},
        "videos_without_features": missing,
        "vocabulary": {"words": len(words), "answers": len(answers) if answers else None,
                       "answers_without_class": {name: without_class(qs) for name, qs in chosen.items()}},
        "selected_epoch": best_epoch,
        "epochs_run": len(history),
        "val": history[best_epoch - 1]["val"],
        "test": test_metrics,
        "device": str(device),
        "seconds": time.time() - started,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }, out / "run.json")
    reader.close()
    if bert is not None:
        bert.close()
    return checkpoint_path
