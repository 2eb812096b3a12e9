"""The ``extract`` command line (DESIGN.md section 6).

Heavy imports happen inside each command, so ``extract --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from extract.cli_common import FROM_YAML
from extract.cli_common import fail as _fail
from extract.cli_common import setup_logging as _setup_logging
from extract.cli_export import export_app
from extract.cli_videoqa import TRAIN_HELP, evaluate, train
from extract.names import DATASETS, EXECUTORS, PRESETS, STAGES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible VideoQA feature extraction (MASN layout).")


@app.command()
def run(
    dataset: str = typer.Option(..., help=" | ".join(DATASETS)),
    config: Optional[Path] = typer.Option(None, help="YAML config", show_default="pipelines/DATASET.yaml"),
    data_root: Optional[Path] = typer.Option(None, help="annotations root", show_default=FROM_YAML),
    videos: Optional[Path] = typer.Option(None, help="directory of the video files", show_default=FROM_YAML),
    out: Optional[Path] = typer.Option(None, help="output directory", show_default=FROM_YAML),
    stages: Optional[str] = typer.Option(None, help="comma-separated, of: " + ", ".join(STAGES), show_default=FROM_YAML),
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
    detections: Optional[Path] = typer.Option(None, help="external boxes: a directory of <key>.json or an HDF5 "
                                              "file; the detector is not built", show_default=FROM_YAML),
    detections_missing: Optional[str] = typer.Option(None, help="a video without detections: fail | empty (zero boxes)",
                                                     show_default=FROM_YAML),
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
        # Against the working directory, as a shell would (a YAML's relative path is against data_root).
        "detections": {"path": detections.expanduser().absolute() if detections else None, "missing": detections_missing},
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

    import torch

    from extract.detections import DetectionError, read_json_detections
    from extract.linking import LinkConfig, link_detections, trajectories_to_json

    given = {
        "link_iou": link_iou, "suppress_iou": suppress_iou, "max_gap": max_gap, "class_agnostic": class_agnostic,
        "min_length": min_length, "rescore": rescore, "min_score": min_score,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if top_n is not None:
        settings["top_n"] = top_n or None
    try:
        config = dataclasses.replace(LinkConfig(), **settings)
    except ValueError as e:
        _fail(f"invalid linking option: {e}")
    try:
        # The file's box order, so that a trajectory's box indices are the file's.
        video = read_json_detections(detections, best_first=False)
    except DetectionError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{detections}: {e}")
    trajectories = link_detections([torch.from_numpy(f.boxes) for f in video.frames],
                                   [torch.from_numpy(f.scores) for f in video.frames],
                                   [torch.from_numpy(f.labels) for f in video.frames], config)
    result = trajectories_to_json(trajectories)
    if video.label_names:
        for t in result["trajectories"]:
            t["label_name"] = video.label_names[t["label"]]
    output.write_text(json.dumps(result, indent=1))
    typer.echo(f"{len(trajectories)} trajectories -> {output}")


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


app.command(help=TRAIN_HELP)(train)
app.command()(evaluate)
app.add_typer(export_app, name="export")


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
