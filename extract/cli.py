"""The ``extract`` command line (DESIGN.md section 6).

Heavy imports happen inside each command, so ``extract --help`` is instant.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from extract.names import DATASETS, EXECUTORS, PRESETS, STAGES, TGIF_TASK_ALIASES
from extract.videoqa.registry import MODEL_MODULES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible VideoQA feature extraction (MASN layout).")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.command()
def run(
    dataset: str = typer.Option(..., help=" | ".join(DATASETS)),
    config: Optional[Path] = typer.Option(None, help="YAML config (default: pipelines/<dataset>.yaml)"),
    data_root: Optional[Path] = typer.Option(None, help="annotations root"),
    videos: Optional[Path] = typer.Option(None, help="directory of the video files"),
    out: Optional[Path] = typer.Option(None, help="output directory"),
    stages: Optional[str] = typer.Option(None, help="comma-separated: " + ",".join(STAGES)),
    executor: Optional[str] = typer.Option(None, help=" | ".join(EXECUTORS)),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (auto joins a running cluster)"),
    num_gpus: Optional[int] = typer.Option(None, help="ray: GPU model actors (default: every GPU in the cluster)"),
    decode_workers: Optional[int] = typer.Option(None, help="ray: decode tasks at once (default: as CPUs allow)"),
    preset: Optional[str] = typer.Option(None, help=" | ".join(PRESETS)),
    weights: Optional[str] = typer.Option(None, help="pretrained | random | DIR"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N"),
    batch_size: Optional[int] = typer.Option(None, help="frames or clips per model batch"),
    max_side: Optional[int] = typer.Option(None, help="downscale larger frames at decode to this longer side (0: never)"),
    part_steps: Optional[int] = typer.Option(None, help="appearance steps decoded at a time (longer videos stream)"),
    max_pixels: Optional[int] = typer.Option(None, help="refuse frames (GIF canvases) of more pixels before decoding (0: never)"),
    detections: Optional[Path] = typer.Option(None, help="external boxes: a directory of <key>.json or an HDF5 file; "
                                              "the detector is not built"),
    detections_missing: Optional[str] = typer.Option(None, help="a video without detections: fail | empty (zero boxes)"),
    limit: Optional[int] = typer.Option(None, help="only the first N videos"),
    max_failures: Optional[int] = typer.Option(None, help="exit non-zero when more videos fail"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Extract features into OUT (resumable: done videos are skipped)."""
    _setup_logging(verbose)
    from extract.config import ConfigError, load_config
    from extract.datasets.base import AnnotationError
    from extract.lifetime import Terminated, raise_on_sigterm
    from extract.models.weights import WeightsUnavailable
    from extract.pipeline import StorageError, run_pipeline
    from extract.store import OutputLocked

    overrides = {
        "data_root": data_root, "videos": videos, "out": out, "stages": stages, "executor": executor,
        "address": address, "num_gpus": num_gpus, "decode_workers": decode_workers, "limit": limit,
        "max_failures": max_failures, "preset": preset, "weights": weights,
        "runtime": {"device": device, "batch_size": batch_size},
        "decode": {"max_side": max_side, "part_steps": part_steps, "max_pixels": max_pixels},
        # Against the working directory, as a shell would (a YAML's relative path is against data_root).
        "detections": {"path": detections.expanduser().absolute() if detections else None, "missing": detections_missing},
    }
    raise_on_sigterm()  # a scheduler's SIGTERM stops the run as Ctrl-C does
    try:
        cfg = load_config(dataset, config_path=config, overrides=overrides)
        summary = run_pipeline(cfg)
    except KeyboardInterrupt as e:
        # Committed shards are kept and a half-written one is removed: the rerun resumes.
        _fail("interrupted: rerun the same command to resume", code=143 if isinstance(e, Terminated) else 130)
    except ConfigError as e:
        _fail(str(e))
    except (AnnotationError, WeightsUnavailable, OutputLocked, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    except StorageError as e:
        _fail(str(e), code=1)
    for line in summary.lines():
        typer.echo(line)
    if summary.failures and len(summary.failures) > cfg.max_failures:
        _fail(f"{len(summary.failures)} videos failed (more than --max-failures {cfg.max_failures}); see {cfg.out}/manifest.jsonl", code=1)


@app.command()
def inspect(out: Path = typer.Argument(..., help="output directory")) -> None:
    """What is in an output directory, per feature, with counts and shapes."""
    from extract.outputs import inspect_output

    for line in inspect_output(out):
        typer.echo(line)


@app.command()
def verify(
    out: Path = typer.Argument(..., help="output directory"),
    checksums: bool = typer.Option(True, help="recompute shard sha256 against the manifest"),
) -> None:
    """Check an output directory: records, shards, shapes, finiteness, index links."""
    from extract.outputs import verify_output

    problems = verify_output(out, checksums=checksums)
    for line in problems:
        typer.echo(line)
    if problems:
        _fail(f"{len(problems)} problem(s) in {out}", code=1)
    typer.echo(f"{out}: OK")


@app.command()
def viz(
    out: Path = typer.Argument(..., help="output directory"),
    key: str = typer.Argument(..., help="video key"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="PNG contact sheet, or .gif (default OUT/viz/KEY.png)"),
) -> None:
    """Draw a video's boxes (with labels) and trajectories on its sampled frames."""
    from extract.viz import render

    try:
        path = render(out, key, output or out / "viz" / f"{key}.png")
    except (KeyError, ValueError) as e:
        _fail(str(e).strip("'\""))
    typer.echo(str(path))


@app.command()
def link(
    detections: Path = typer.Argument(..., help='JSON: {"frames": [{"time", "boxes", "scores", "labels"}, ...]}'),
    output: Path = typer.Option(..., "-o", "--output", help="trajectories JSON"),
    link_iou: Optional[float] = typer.Option(None, help="IoU to link boxes of nearby frames"),
    suppress_iou: Optional[float] = typer.Option(None, help="IoU at which a selected box suppresses others"),
    max_gap: Optional[int] = typer.Option(None, help="frames a link may skip"),
    class_agnostic: Optional[bool] = typer.Option(None, "--class-agnostic/--class-aware", help="link across labels"),
    min_length: Optional[int] = typer.Option(None, help="drop shorter trajectories"),
    top_n: Optional[int] = typer.Option(None, help="keep at most N trajectories (0 = no cap)"),
    rescore: Optional[str] = typer.Option(None, help="mean | max"),
    min_score: Optional[float] = typer.Option(None, help="stop when the best path scores less"),
) -> None:
    """Link detections you already have into trajectories (improved seq-NMS)."""
    import dataclasses
    import json

    from extract.linking import LinkConfig, detections_from_json, link_detections, trajectories_to_json

    given = {
        "link_iou": link_iou, "suppress_iou": suppress_iou, "max_gap": max_gap, "class_agnostic": class_agnostic,
        "min_length": min_length, "rescore": rescore, "min_score": min_score,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if top_n is not None:
        settings["top_n"] = top_n or None
    try:
        config = dataclasses.replace(LinkConfig(), **settings)
        obj, names = _name_labels_to_ints(json.loads(detections.read_text()))
        _, boxes, scores, labels = detections_from_json(obj)
    except (ValueError, OSError) as e:
        _fail(f"{detections}: {e}")
    trajectories = link_detections(boxes, scores, labels, config)
    result = trajectories_to_json(trajectories)
    if names:
        for t in result["trajectories"]:
            t["label_name"] = names[t["label"]]
    output.write_text(json.dumps(result, indent=1))
    typer.echo(f"{len(trajectories)} trajectories -> {output}")


def _name_labels_to_ints(obj):
    """Detections whose labels are class names (as ``--detections`` allows) with the labels as
    indices into ``label_names`` (the file's own, else the sorted names used); and those names."""
    if not isinstance(obj, dict) or not isinstance(obj.get("frames"), list):
        return obj, None
    labelled = [f for f in obj["frames"] if isinstance(f, dict) and isinstance(f.get("labels"), list)]
    used = {c for f in labelled for c in f["labels"] if isinstance(c, str)}
    if not used:
        return obj, obj.get("label_names")
    names = obj.get("label_names") or sorted(used)
    unknown = sorted(used - set(names))
    if unknown:
        raise ValueError(f"label(s) {', '.join(map(repr, unknown[:5]))} not in label_names")
    position = {name: i for i, name in enumerate(names)}
    frames = [dict(f, labels=[position.get(c, c) for c in f["labels"]]) if f in labelled else f for f in obj["frames"]]
    return dict(obj, frames=frames), list(names)


export_app = typer.Typer(no_args_is_help=True, help="Write a run's features in another layout: nextqa, masn; or its detections as JSON.")
app.add_typer(export_app, name="export")


@export_app.command("nextqa")
def export_nextqa_command(
    out: Path = typer.Argument(..., help="output directory of an `extract run`"),
    dest: Optional[Path] = typer.Option(None, "--out", help="NExT-QA feature root (default OUT/nextqa)"),
    data_root: Optional[Path] = typer.Option(None, help="annotations root, if not where run.json says"),
) -> None:
    """NExT-QA's layout: vid_feat/app_mot_<split>.h5 (ids, feat (N, 16, 4096)) and traj_feat/traj_<split>.h5."""
    from extract.datasets.base import AnnotationError
    from extract.export import export_nextqa

    try:
        report = export_nextqa(out, dest, data_root=data_root)
    except (AnnotationError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    for line in report.lines:
        typer.echo(line)
    for path in report.written:
        typer.echo(str(path))
    if not report.written:
        _fail(f"nothing exported from {out}", code=1)


@export_app.command("masn")
def export_masn_command(out: Path = typer.Argument(..., help="output directory of an `extract run`")) -> None:
    """(Re)write OUT/masn/: the MASN index files, external links into the shards."""
    from extract.export._run import run_config
    from extract.store import OutputDir, OutputLocked, build_index

    try:
        dataset = run_config(out)["dataset"]
        target = OutputDir(out)
        target.lock()
    except (FileNotFoundError, ValueError, OutputLocked) as e:
        _fail(str(e))
    try:
        written = build_index(target, dataset)
    finally:
        target.unlock()
    for role, path in written.items():
        typer.echo(f"{role}: {path}")


@export_app.command("detections")
def export_detections_command(
    out: Path = typer.Argument(..., help="output directory of an `extract run` with the objects stage"),
    dest: Path = typer.Option(..., "--out", help="directory for <key>.json (the --detections format)"),
) -> None:
    """The run's step detections as one <key>.json per video, readable back as detections."""
    from extract.export import export_run_detections
    from extract.models.detector import category_names

    try:
        written = export_run_detections(out, dest, label_names=category_names())
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{len(written)} videos -> {dest}")


def _model_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"--model-option takes NAME=VALUE, got {pair!r}")
        options[name.strip()] = yaml.safe_load(value)
    return options


@app.command(help="Train a registered VideoQA model on extracted features. Models: "
             f"{', '.join(sorted(MODEL_MODULES))}. Model selection on validation; the test split is evaluated once.")
def train(
    model: str = typer.Argument(..., help="registered model name (see Models above)"),
    dataset: str = typer.Option(..., help=" | ".join(DATASETS)),
    task: Optional[str] = typer.Option(None, help="TGIF task: Count | Action | Trans | FrameQA"),
    data_root: Path = typer.Option(..., help="annotations root (question files)"),
    feat_dir: Path = typer.Option(..., help="feature dir: OUT/masn, or what `extract export nextqa` wrote"),
    out_dir: Path = typer.Option(..., help="where checkpoint, metrics and predictions go"),
    glove: Optional[Path] = typer.Option(None, help="GloVe text file (300-d)"),
    random_embeddings: bool = typer.Option(False, help="random word vectors instead of GloVe (recorded)"),
    epochs: Optional[int] = typer.Option(None, help="at most this many epochs [default: 50]"),
    batch_size: Optional[int] = typer.Option(None, help="questions per batch [default: the paper's]"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate [default: the paper's]"),
    hidden_size: Optional[int] = typer.Option(None, help="model width (model option hidden_size)"),
    patience: Optional[int] = typer.Option(None, help="stop after this many epochs without validation gain"),
    question_only: bool = typer.Option(False, help="baseline: the video features are not used (recorded)"),
    standardize_features: bool = typer.Option(False, help="z-score feature channels with training statistics"),
    model_option: list[str] = typer.Option([], "--model-option", "-o", help="NAME=VALUE of the model's config"),
    augment: Optional[str] = typer.Option(None, help="sample augmentation of multiple-choice training: a-, qa- or a-,qa-"),
    augment_negatives: int = typer.Option(5, help="M, negatives added per strategy and question (with --augment)"),
    bert_dir: Optional[Path] = typer.Option(None, help="dir of NExT-QA's bert_ft_<split>.h5 (hga, trajectory_hg)"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N] [default: auto]"),
    seed: Optional[int] = typer.Option(None, help="initialisation and shuffling seed [default: 0]"),
    overwrite: bool = typer.Option(False, help="replace an existing run in OUT_DIR"),
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
        _fail(f"invalid training configuration:\n{e}")
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(str(e))
    summary = json.loads((checkpoint.parent / "run.json").read_text())
    for split in ("val", "test"):
        metrics = summary.get(split)
        if metrics:
            typer.echo(format_table(metrics, title=f"{split} ({model}, {dataset} {task or ''})".strip()))
    typer.echo(f"checkpoint: {checkpoint}")


@app.command()
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


@app.command()
def bench(
    preset: str = typer.Option("tiny", help=" | ".join(PRESETS)),
    videos: Optional[Path] = typer.Option(None, help="directory of videos to time"),
    synthetic: Optional[int] = typer.Option(None, help="time N generated TGIF-like GIFs instead (default 8)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    weights: str = typer.Option("random", help="random | pretrained | DIR (random: timing only)"),
    batch_size: Optional[int] = typer.Option(None, help="frames or clips per model batch"),
    stages: str = typer.Option(",".join(STAGES), help="comma-separated stages"),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA; changes features)"),
    threads: Optional[int] = typer.Option(None, help="torch threads of the optimized path (default: auto)"),
    option: list[str] = typer.Option([], "--option", "-o", help="a config field of the optimized path, SECTION.KEY=VALUE (repeatable), e.g. roi.fast=true"),
    naive_threads: Optional[int] = typer.Option(None, help="torch threads of the naive path (default: every core)"),
    detections: Optional[Path] = typer.Option(None, help="external boxes: a directory of <key>.json or an HDF5 file; "
                                              "the detector is not built"),
    detections_missing: Optional[str] = typer.Option(None, help="a video without detections: fail | empty (zero boxes)"),
    limit: Optional[int] = typer.Option(None, help="only the first N videos"),
    seed: int = typer.Option(0, help="seed of the synthetic videos"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON"),
    check: bool = typer.Option(True, help="compare the two paths' features after timing"),
) -> None:
    """Throughput per stage, against a naive baseline (one video, one model at a time) in the same run."""
    _setup_logging(False)
    import yaml

    from extract.bench import format_report, run_bench, write_json
    from extract.config import ConfigError, deep_merge
    from extract.datasets.base import AnnotationError
    from extract.models.weights import WeightsUnavailable

    if videos is not None and synthetic is not None:
        _fail("give --videos DIR or --synthetic N, not both")
    options = {"runtime": {"amp": amp or None, "threads": threads}}
    for item in option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--option expects SECTION.KEY=VALUE, got {item!r}")
        nested = yaml.safe_load(value)
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        options = deep_merge(options, nested)
    try:
        result = run_bench(
            preset=preset, videos=videos, synthetic=synthetic if videos is not None or synthetic is not None else 8,
            device=device, weights=weights, batch_size=batch_size, stages=stages,
            options=options, seed=seed, limit=limit, check=check,
            naive_threads=naive_threads,
        )
    except (ConfigError, AnnotationError, WeightsUnavailable, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if json_path is not None:
        write_json(result, json_path)
    for line in format_report(result):
        typer.echo(line)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
