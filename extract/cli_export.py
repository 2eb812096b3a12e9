"""``extract export``: a finished run's features in another layout (NExT-QA's, MASN's index) or its
detections in the ``--detections`` format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from extract.cli_common import fail as _fail

export_app = typer.Typer(no_args_is_help=True, help="Write a run's features in another layout: nextqa, masn; or its detections as JSON.")


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
    from extract.index_files import build_index
    from extract.store import OutputDir, OutputLocked

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
