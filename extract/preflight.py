"""Checks of a run's setting that fail fast, before OUT is locked and before any model is built.

Each raises :class:`PreflightError` (a ``ValueError``: the command line exits 2) with a message
that names the option or path and says what to do.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from extract.config import RunConfig
from extract.datasets.base import VideoRecord

log = logging.getLogger("extract")


class PreflightError(ValueError):
    """The run cannot start as configured; the message says how to fix it."""


def check_run(config: RunConfig, records: Sequence[VideoRecord]) -> None:
    """Every check below, in the order a person would fix them."""
    check_executor(config.executor)
    check_device(config.runtime.device, config.executor)
    check_out(config.out)
    check_videos_found(records)


def check_executor(executor: str) -> None:
    """``--executor ray`` needs Ray, an optional dependency."""
    if executor != "ray":
        return
    try:
        import ray  # noqa: F401 - only whether it imports
    except ImportError as e:
        raise PreflightError(f"--executor ray needs Ray, which is not installed ({e}): "
                             'pip install "vqa-extract[ray]", or use --executor local') from None


def check_device(device: str, executor: str) -> None:
    """``--device cuda[:N]`` needs that GPU here; Ray actors resolve the device on their own nodes."""
    if executor != "local" or not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        seen = (f"{count} CUDA GPU(s) are visible" if count
                else "no CUDA GPU is visible (torch.cuda.is_available() is False)")
        raise PreflightError(f"--device {device}: {seen}; use --device cpu, or --device auto (a GPU when there is one)")


def check_out(out: Path) -> None:
    """OUT is a directory this process can create files in (or can be created as one).

    Writability is tried with a real temporary file, not ``os.access``: as root, permission bits
    do not stop writes, while a read-only mount does.
    """
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = "--out" if existing == out else f"--out {out}: its parent"
        raise PreflightError(f"{what} {existing} is a file, not a directory: give a directory for the outputs")
    if existing is None:
        return
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
    except OSError as e:
        where = "" if existing == out else f" (it would be created in {existing})"
        raise PreflightError(f"--out {out} is not writable{where}: {e.strerror}; "
                             "give a writable directory or fix its permissions") from None
    os.close(fd)
    os.unlink(probe)


def check_videos_found(records: Sequence[VideoRecord]) -> None:
    """Stop when none of the annotated videos exists (a wrong ``--videos``); warn when some are missing
    (each of those fails alone, its line naming the path)."""
    if not records:
        return
    missing = [r for r in records if not os.path.lexists(r.path)]
    if not missing:
        return
    where = _common_dir([r.path for r in records])
    if len(missing) == len(records):
        raise PreflightError(f"0 of {len(records)} videos found under {where}: check --videos (or --data-root); "
                             f"e.g. {records[0].path} does not exist")
    log.warning("%d of %d videos are missing under %s (each fails with its path; e.g. %s)",
                len(missing), len(records), where, missing[0].path)


def _common_dir(paths: Sequence[Path]) -> Path:
    """The deepest directory holding every one of ``paths``."""
    return Path(os.path.commonpath([str(p.parent) for p in paths]))
