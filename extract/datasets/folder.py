"""Any directory of videos, without questions.

Every file below the directory whose extension is one of ``VIDEO_EXTENSIONS`` (any case) is a
video; its key is the file stem (DESIGN.md section 2), with the bytes of a name that is not
valid UTF-8 escaped (``caf\\xe9``: such a video then fails alone, see ``probe.check_file``).
Two files with one key are an error,
reported before any work. Hidden files and directories (``.name``) are skipped. Directory
symlinks are followed, each real directory once, so a symlink loop cannot hang the walk.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import AnnotationError, VideoRecord

from extract.names import VIDEO_EXTENSIONS


def load(directory: Path) -> list[VideoRecord]:
    """Videos under ``directory`` sorted by key (file stem)."""
    if not directory.is_dir():
        raise AnnotationError(f"{directory}: not a directory of videos")
    by_stem: dict[str, list[Path]] = {}
    visited: set[str] = set()
    for current, subdirs, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(current)
        if real in visited:
            subdirs[:] = []
            continue
        visited.add(real)
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                path = Path(current, name)
                by_stem.setdefault(_key(path.stem), []).append(path)
    clashes = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if clashes:
        listing = "; ".join(f"{stem!r}: {', '.join(map(str, paths))}" for stem, paths in sorted(clashes.items()))
        raise AnnotationError(f"{directory}: several videos share a key (the file stem): {listing}")
    return [VideoRecord(stem, paths[0]) for stem, paths in sorted(by_stem.items())]


def _key(stem: str) -> str:
    """``stem`` as text: bytes that are not UTF-8 (surrogate escapes) become ``\\xNN``."""
    return os.fsencode(stem).decode("utf-8", "backslashreplace")
