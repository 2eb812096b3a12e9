"""Write-then-rename: a reader (or a crash) sees the old file or the new one, never half of one.

Every file the project writes whole (shards, indexes, run.json, checkpoints, caches, reports)
goes through :func:`atomic_path`: write a temp file next to the target, fsync it, rename it
over the target, fsync the directory so the rename itself survives a power loss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"  # every temp file ends so; OutputDir.clean removes leftovers of killed runs


def temp_path(path: Path) -> Path:
    """A temp name beside ``path``, distinct per process (``.NAME.PID.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str, *, tmp: Path | None = None) -> Iterator[Path]:
    """Yield a temp path to write ``path`` through; on success it replaces ``path``, on error it is removed.

    tmp: the temp file to use (default ``temp_path(path)``), e.g. one already claimed with O_EXCL.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp or temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path | str, data: bytes | str, *, tmp: Path | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, tmp=tmp) as t:
        t.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def atomic_write_json(path: Path | str, obj, **dumps) -> Path:
    """``json.dumps(obj, **dumps)`` written atomically (non-ASCII kept as is)."""
    return atomic_write(path, json.dumps(obj, ensure_ascii=False, **dumps))
