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

from extract.names import DATASETS, EXECUTORS, PRESETS, STAGES, TGIF_FORMAT, TGIF_TASK_ALIASES
from extract.videoqa.registry import MODEL_MODULES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible VideoQA feature extraction (MASN layout).")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


FROM_YAML = "from --config"  # run options left out take the value in the run's YAML config


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.command()
def run(
    dataset: str = typer.Option(..., help=" | ".join(DATASETS)),
    config: Optional[Path] = typer.Option(None, help="YAML config", show_default="pipelines/DATASET.yaml"),
    data_root: Optional[Path] = typer.Option(None, help="annotations root", show_default=FROM_YAML),
    videos: Optional[Path] = typer.Option(None, help="directory of the video files", show_default=FROM_YAML),
    out: Optional[Path] = typer.Option(None, help="output directory", show_default=FROM_YAML),
    stages: Optional[str] = typer.Option(None, help="comma-separated: " + ",".join(STAGES), show_default=FROM_YAML),
    executor: Optional[str] = typer.Option(None, help=" | ".join(EXECUTORS), show_default=FROM_YAML),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (auto joins a running cluster)", show_default=FROM_YAML),
    num_gpus: Optional[int] = typer.Option(None, help="ray: GPU model actors", show_default="every GPU in the cluster"),
    decode_workers: Optional[int] = typer.Option(None, help="decoding processes (local) or tasks (ray) at once",
                                                 show_default="local: the cores the models leave; ray: as CPUs allow"),
    preset: Optional[str] = typer.Option(None, help=" | ".join(PRESETS), show_default=FROM_YAML),
    weights: Optional[str] = typer.Option(None, help="pretrained | random | DIR", show_default=FROM_YAML),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N", show_default=FROM_YAML),
    batch_size: Optional[int] = typer.Option(None, help="frames or clips per model batch", show_default=FROM_YAML),
    max_side: Optional[int] = typer.Option(None, help="downscale larger frames at decode to this longer side (0: never)", show_default=FROM_YAML),
    part_steps: Optional[int] = typer.Option(None, help="appearance steps decoded at a time (longer videos stream)", show_default=FROM_YAML),
    max_pixels: Optional[int] = typer.Option(None, help="refuse frames (GIF canvases) of more pixels before decoding (0: never)", show_default=FROM_YAML),
    limit: Optional[int] = typer.Option(None, help="only the first N videos", show_default=FROM_YAML),
    max_failures: Optional[int] = typer.Option(None, help="exit non-zero when more videos fail", show_default=FROM_YAML),
    reextract: bool = typer.Option(False, "--reextract", help="extract every video again, also those done with other settings", show_default="off"),
    check_shards: bool = typer.Option(False, "--check-shards", help="recompute done shards' sha256 before resuming", show_default="off"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug log lines", show_default="off"),
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
        "reextract": reextract or None, "check_shards": check_shards or None,
        "runtime": {"device": device, "batch_size": batch_size},
        "decode": {"max_side": max_side, "part_steps": part_steps, "max_pixels": max_pixels},
    }
    raise_on_sigterm()  # a scheduler's SIGTERM stops the run as Ctrl-C does
    cfg = None
    try:
        cfg = load_config(dataset, config_path=config, overrides=overrides)
        summary = run_pipeline(cfg)
    except KeyboardInterrupt as e:
        # Committed shards are kept and indexed, a half-written one is removed: the rerun resumes.
        done = f" ({cfg.out}/run.json and the index list the videos done so far)" if cfg is not None else ""
        _fail(f"interrupted: rerun the same command to resume{done}", code=143 if isinstance(e, Terminated) else 130)
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
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="PNG contact sheet, or .gif [default: ./viz-KEY.png]"),
) -> None:
    """Draw a video's boxes (with labels and scores) and trajectories on its sampled frames."""
    from extract.viz import render

    try:
        # Not inside OUT by default: OUT may be a DVC output, which an extra file would change.
        path = render(out, key, output or Path(f"viz-{key.replace('/', '_')}.png"))
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
        _, boxes, scores, labels = detections_from_json(json.loads(detections.read_text()))
    except (ValueError, OSError) as e:
        _fail(f"{detections}: {e}")
    trajectories = link_detections(boxes, scores, labels, config)
    output.write_text(json.dumps(trajectories_to_json(trajectories), indent=1))
    typer.echo(f"{len(trajectories)} trajectories -> {output}")


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


@app.command(help="Train a registered VideoQA model on extracted features. Models: "
             f"{', '.join(sorted(MODEL_MODULES))}. Model selection on validation; the test split is evaluated once.")
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
    limit: Optional[int] = typer.Option(None, help="only the first N videos"),
    seed: int = typer.Option(0, help="seed of the synthetic videos"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON"),
    check: bool = typer.Option(True, help="compare the two paths' features after timing"),
    decode_only: bool = typer.Option(False, "--decode-only", help="time decoding alone (no models): videos/s and grid frames/s"),
    decode_workers: Optional[str] = typer.Option(None, help="--decode-only: decoding processes, N or a list (1,2: each timed on the same videos) [default: every core]"),
    transfer: str = typer.Option("shm", help="--decode-only: frames to the parent by shm | pickle | both"),
    repeat: int = typer.Option(3, help="--decode-only: rounds (settings alternate within each); the median is reported"),
    copies: int = typer.Option(1, help="--decode-only: decode each video this many times per round"),
) -> None:
    """Throughput per stage, against a naive baseline (one video, one model at a time) in the same run."""
    _setup_logging(False)
    if decode_only:
        _bench_decode(videos, synthetic, decode_workers, transfer, repeat, copies, seed, json_path)
        return
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


def _bench_decode(videos, synthetic, workers, transfer, repeat, copies, seed, json_path) -> None:
    from extract.bench import write_json
    from extract.bench.decode import TRANSFERS, format_decode_report, run_decode_bench
    from extract.features.runtime import cpu_count

    if videos is not None and synthetic is not None:
        _fail("give --videos DIR or --synthetic N, not both")
    try:
        counts = [int(w) for w in workers.split(",")] if workers else [cpu_count()]
    except ValueError:
        _fail(f"--decode-workers takes N or N,M,..., got {workers!r}")
    transfers = list(TRANSFERS) if transfer == "both" else [transfer]
    try:
        result = run_decode_bench(videos=videos, synthetic=synthetic if videos is not None or synthetic is not None else 8,
                                  workers=counts, transfers=transfers, repeat=repeat, copies=copies, seed=seed)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if json_path is not None:
        write_json(result, json_path)
    for line in format_decode_report(result):
        typer.echo(line)
