"""Evaluation of a trained checkpoint of any registered model: predictions for every
question of a split, written as a predictions JSON, and the benchmark's metrics (see ``metrics``).

A checkpoint is a plain dict (``state_dict``, the training config, vocabularies, selected epoch)
that loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from extract.features.runtime import resolve_device

from extract.datasets.base import Question
from extract.videoqa.data import Head, build_examples
from extract.videoqa.inputs import make_source_loader, open_bert, open_reader
from extract.videoqa.losses import decide, head_loss
from extract.videoqa.metrics import summarize, write_predictions
from extract.videoqa.registry import get_model_spec
from extract.videoqa.tasks import load_splits, select_questions, with_features
from extract.videoqa.vocab import AnswerVocab, WordVocab, normalize_answer

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "predict", "evaluate", "evaluate_checkpoint"]

CHECKPOINT_FORMAT = "vqa-extract/masn-checkpoint/1"

log = logging.getLogger(__name__)


def load_checkpoint(path: Path, *, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint, in eval mode on ``device``, and the checkpoint dict itself."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint of this package (format {checkpoint.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    spec = get_model_spec(checkpoint.get("arch", "masn"))
    model = spec.builder(spec.config(**checkpoint["config"]["model"]), **checkpoint["model_args"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(resolve_device(device)).eval(), checkpoint


def _record(question: Question, decided: int, head: Head, answers: AnswerVocab | None) -> dict:
    if head == "open":
        prediction, answer = answers.answers[decided], normalize_answer(question.answer)
    elif head == "count":
        prediction, answer = decided, int(round(float(question.answer)))
    else:
        prediction, answer = decided, int(question.answer)
    return {"video": question.key, "qid": question.qid, "task": question.task,
            "prediction": prediction, "answer": answer}


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    questions: Sequence[Question],
    *,
    answers: AnswerVocab | None,
    device: torch.device,
    progress: Callable[[Iterable, int, str], Iterable] | None = None,
) -> tuple[list[dict], float]:
    """One pass over ``loader`` (built on ``questions``): prediction records and the mean loss.

    progress: wraps the batches, given ``(batches, number of batches, description)``, to show progress.
    """
    model.eval()
    head = model.head_kind
    records, loss_sum = [], 0.0
    batches = progress(loader, len(loader), "predicting") if progress else loader
    for batch in batches:
        batch = batch.to(device)
        output = model(batch)
        loss_sum += head_loss(head, output, batch.targets).item() * len(batch)
        for i, decided in zip(batch.index.tolist(), decide(head, output).tolist()):
            records.append(_record(questions[i], decided, head, answers))
    return records, loss_sum / max(len(records), 1)


def evaluate(
    checkpoint: Path,
    questions: Sequence[Question],
    *,
    feat_dir: Path,
    out: Path,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
) -> dict[str, float | None]:
    """Predict every question of the checkpoint's dataset/task in ``questions``, write the predictions
    JSON to ``out`` and return the metrics (``metrics.summarize``).

    Questions of other TGIF tasks are ignored; questions whose video has no features are left out
    with a logged warning (they are then absent from the predictions JSON).
    """
    torch_device = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint, device=str(torch_device))
    config = ckpt["config"]
    dataset, task = config["dataset"], config["task"]
    words = WordVocab(tuple(ckpt["words"]))
    answers = AnswerVocab(tuple(ckpt["answers"])) if model.head_kind == "open" else None

    spec = get_model_spec(ckpt.get("arch", "masn"))
    reader = open_reader(spec.source, feat_dir, dataset)
    selected, missing = with_features(select_questions(questions, dataset, task), reader)
    if missing:
        log.warning("%d videos have no features in %s and are left out (e.g. %s)",
                    len(missing), feat_dir, missing[0])
    if not selected:
        raise ValueError(f"no {dataset} {task or ''} question with features in {feat_dir} to evaluate")
    bert_dir = config.get("bert_dir")
    bert = open_bert(spec.source, Path(bert_dir) if bert_dir else None, sorted({q.split for q in selected}))
    examples = build_examples(selected, head=model.head_kind, words=words, answers=answers,
                              max_tokens=config["max_question_tokens"], text_rows=bert is not None)
    loader = make_source_loader(spec.source, examples, reader, words=words, max_steps=ckpt["max_steps"],
                                sample=spec.sample, bert=bert, batch_size=batch_size, shuffle=False,
                                num_workers=num_workers, seed=0, persistent=False)
    records, _ = predict(model, loader, selected, answers=answers, device=torch_device)
    reader.close()
    write_predictions(records, out)
    return summarize(records, dataset)


def evaluate_checkpoint(
    checkpoint: Path,
    *,
    data_root: Path,
    feat_dir: Path,
    split: str = "test",
    out: Path | None = None,
    device: str = "auto",
) -> dict[str, float | None]:
    """``evaluate`` on one split loaded with ``extract.datasets.load_dataset``; the predictions go to
    ``out`` (default ``predictions_<split>.json`` next to the checkpoint)."""
    dataset = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)["config"]["dataset"]
    splits = load_splits(dataset, data_root)
    if split not in splits:
        raise ValueError(f"split {split!r} of {dataset} not found under {data_root}; have {sorted(splits)}")
    out = Path(out) if out is not None else Path(checkpoint).with_name(f"predictions_{split}.json")
    return evaluate(checkpoint, splits[split], feat_dir=feat_dir, out=out, device=device)
