"""``extract train MODEL`` and ``extract evaluate``: the VideoQA commands (the trainers are imported
only when a command runs, so ``extract --help`` stays instant)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from extract.cli_common import fail as _fail
from extract.cli_common import setup_logging as _setup_logging
from extract.names import DATASETS, TGIF_FORMAT, TGIF_TASK_ALIASES
from extract.videoqa.registry import MODEL_MODULES

TRAIN_HELP = ("Train a registered VideoQA model on extracted features. Models: "
              f"{', '.join(sorted(MODEL_MODULES))}. Model selection on validation; the test split is evaluated once.")

def _model_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"--model-option takes NAME=VALUE, got {pair!r}")
        options[name.strip()] = yaml.safe_load(value)
    return options


def _validation_lines(error, options: set[str]) -> str:
    """A pydantic error as one line per field, named as the option a person types: ``--epochs``, or
    ``--model-option NAME`` for a field of the model's config that has no option of its own."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"] if str(part) != "model"]
        name = "-".join(loc)
        flag = f"--{name.replace('_', '-')}" if name in options else f"--model-option {name}" if name else "options"
        lines.append(f"  {flag}: {item['msg']}")
    return "\n".join(lines)


def _interrupted_training(out_dir: Path) -> None:
    """Say what an interrupted training run keeps: the best checkpoint so far and the epochs' metrics."""
    history = out_dir / "metrics.jsonl"
    epochs = [json.loads(line) for line in history.read_text().splitlines() if line.strip()] if history.is_file() else []
    selected = [e for e in epochs if e.get("selected")]
    if not selected or not (out_dir / "checkpoint.pt").is_file():
        _fail(f"interrupted before the first epoch ended: nothing is kept in {out_dir}", code=130)
    best = selected[-1]
    metric = next(k for k in best if k.startswith("val_") and k != "val_loss" and k != "val")
    _fail(f"interrupted after {len(epochs)} epoch(s): the best checkpoint so far (epoch {best['epoch']}, {metric} "
          f"{best[metric]:.3f}) is kept in {out_dir / 'checkpoint.pt'}, the epochs in {history}; no test predictions "
          "or run.json were written. Training does not resume: evaluate that checkpoint with `extract evaluate "
          "--checkpoint`, or rerun with --overwrite to train again", code=130)


def train(
    model: str = typer.Argument(..., help="registered model name (see Models above)"),
    dataset: str = typer.Option(..., help=" | ".join(DATASETS)),
    task: Optional[str] = typer.Option(None, help="TGIF task: Count | Action | Trans | FrameQA",
                                       show_default="none; tgif, demo, folder need one"),
    data_root: Path = typer.Option(..., help="annotations root (question files)"),
    feat_dir: Path = typer.Option(..., help="feature dir: OUT/masn, or what `extract export nextqa` wrote"),
    out_dir: Path = typer.Option(..., help="where checkpoint, metrics and predictions go"),
    glove: Optional[Path] = typer.Option(None, help="GloVe text file (300-d)", show_default="none: give --random-embeddings"),
    random_embeddings: bool = typer.Option(False, "--random-embeddings", help="random word vectors instead of GloVe (recorded)", show_default="off"),
    epochs: Optional[int] = typer.Option(None, help="at most this many epochs", show_default="50"),
    batch_size: Optional[int] = typer.Option(None, help="questions per batch", show_default="the model's paper value"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate", show_default="the model's paper value"),
    hidden_size: Optional[int] = typer.Option(None, help="model width (model option hidden_size)", show_default="the model's"),
    patience: Optional[int] = typer.Option(None, help="stop after this many epochs without validation gain", show_default="10"),
    question_only: bool = typer.Option(False, "--question-only", help="baseline: the video features are not used (recorded)", show_default="off"),
    standardize_features: bool = typer.Option(False, "--standardize-features", help="z-score feature channels with training statistics", show_default="off"),
    model_option: list[str] = typer.Option([], "--model-option", "-o", help="NAME=VALUE of the model's config (repeatable)", show_default="none"),
    augment: Optional[str] = typer.Option(None, help="sample augmentation of multiple-choice training: a-, qa- or a-,qa-", show_default="none"),
    augment_negatives: int = typer.Option(5, help="M, negatives added per strategy and question (with --augment)"),
    bert_dir: Optional[Path] = typer.Option(None, help="dir of NExT-QA's bert_ft_<split>.h5 (hga, trajectory_hg)", show_default="none: GloVe"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N]", show_default="auto"),
    seed: Optional[int] = typer.Option(None, help="initialisation and shuffling seed", show_default="0"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in OUT_DIR", show_default="off"),
) -> None:
    _setup_logging(False)
    from pydantic import ValidationError

    from extract.videoqa.metrics import format_table
    from extract.videoqa.registry import get_model_spec
    from extract.videoqa.train import TrainConfig
    from extract.videoqa.train import train as run_training

    try:
        spec = get_model_spec(model)
    except ValueError as e:
        _fail(str(e))
    if task is not None and task.lower() not in TGIF_TASK_ALIASES:
        _fail(f"--task must be one of Count, Action, Trans, FrameQA, got {task!r}")
    if task is None and dataset in TGIF_FORMAT:
        _fail(f"--dataset {dataset} trains one task at a time: pass --task Count|Action|Trans|FrameQA")
    if task is not None and dataset not in TGIF_FORMAT:
        _fail(f"--dataset {dataset} trains on all its questions: drop --task {task}")
    given = {
        "arch": model, "dataset": dataset, "task": TGIF_TASK_ALIASES[task.lower()] if task else None, "data_root": data_root,
        "feat_dir": feat_dir, "out_dir": out_dir, "glove": glove, "random_embeddings": random_embeddings,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience, "device": device, "seed": seed,
        "overwrite": overwrite,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if bert_dir is not None:
        settings["bert_dir"] = bert_dir
    if augment is not None:
        from extract.videoqa.augment import parse_augment

        try:
            settings["augment"] = parse_augment(augment, augment_negatives)
        except ValueError as e:
            _fail(str(e))
    options = {"hidden_size": hidden_size, "question_only": question_only or None,
               "standardize_features": standardize_features or None}
    options = {k: v for k, v in options.items() if v is not None} | _model_options(model_option)
    unknown = sorted(set(options) - set(spec.config.model_fields))
    if unknown:
        _fail(f"model {model!r} has no option {', '.join(unknown)}; its options: {', '.join(spec.config.model_fields)}")
    settings["model"] = options
    try:
        checkpoint = run_training(TrainConfig.model_validate(settings))
    except ValidationError as e:
        _fail(f"invalid training options:\n{_validation_lines(e, {p for p in given if p != 'arch'} | {'hidden_size'})}")
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _interrupted_training(out_dir)
    summary = json.loads((checkpoint.parent / "run.json").read_text())
    for split in ("val", "test"):
        metrics = summary.get(split)
        if metrics:
            typer.echo(format_table(metrics, title=f"{split} ({model}, {dataset} {task or ''})".strip()))
    typer.echo(f"checkpoint: {checkpoint}")


def evaluate(
    dataset: str = typer.Argument(..., help=" | ".join(DATASETS)),
    predictions: Optional[Path] = typer.Option(None, help="predictions JSON keyed <video>_<qid> (prediction, answer)"),
    annotations: Optional[Path] = typer.Option(None, help="NExT-QA annotations csv (with --predictions)"),
    checkpoint: Optional[Path] = typer.Option(None, help="a trained checkpoint: predict, write predictions, score"),
    data_root: Optional[Path] = typer.Option(None, help="annotations root (with --checkpoint)"),
    feat_dir: Optional[Path] = typer.Option(None, help="the checkpoint's feature dir (with --checkpoint)"),
    split: str = typer.Option("test", help="split to evaluate (with --checkpoint)"),
) -> None:
    """Metrics as in the papers' tables; NExT-QA by question type (CW CH TN TC DC DL DO, C T D, All)."""
    from extract.videoqa.evaluate import evaluate_checkpoint
    from extract.videoqa.metrics import evaluate_nextqa, evaluate_predictions, format_table

    try:
        if predictions is not None and dataset in ("nextqa", "demo-mc") and annotations is not None:
            metrics = evaluate_nextqa(predictions, annotations)
        elif predictions is not None:
            metrics = evaluate_predictions(predictions, dataset)
        elif checkpoint is not None and data_root is not None and feat_dir is not None:
            metrics = evaluate_checkpoint(checkpoint, data_root=data_root, feat_dir=feat_dir, split=split)
        else:
            _fail("give --predictions (and --annotations for nextqa), or --checkpoint with --data-root and --feat-dir")
    except (ValueError, FileNotFoundError, KeyError) as e:
        _fail(str(e))
    typer.echo(format_table(metrics, title=f"{dataset}"))
