"""GloVe word vectors for the MASN question encoder (Seo et al., ACL 2021, section 3.1: "We apply the
pre-trained GloVe to convert each question word into a 300-dimensional vector").

The GloVe text file (``word v1 v2 ... vD`` per line; Pennington et al., 2014) is streamed once, keeping
only the vocabulary's words, and the resulting matrix is cached as ``.npy`` under a name derived from
a hash of the vocabulary and of the GloVe file (path, size, modification time). Nothing is ever
downloaded: the file must be on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.atomic import atomic_path

__all__ = ["WordVectors", "load_glove", "random_word_vectors"]


@dataclass(frozen=True)
class WordVectors:
    """A ``[V, D]`` float32 matrix aligned with a word vocabulary, and where it came from."""

    matrix: np.ndarray  # [V, D]; row 0 (padding) is zero
    source: str  # "glove:<path>" or "random"
    found: int  # vocabulary words (PAD and UNK excluded) that had a GloVe vector

    def metadata(self) -> dict:
        return {"source": self.source, "dim": int(self.matrix.shape[1]), "rows": int(self.matrix.shape[0]),
                "found_in_glove": self.found}


def _cache_name(words: Sequence[str], glove: Path) -> str:
    stat = glove.stat()
    digest = hashlib.sha256()
    digest.update(f"{glove.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    digest.update("\n".join(words).encode())
    return f"glove-{digest.hexdigest()[:20]}.npy"


def _fill_missing(matrix: np.ndarray, missing: np.ndarray, seed_text: str) -> None:
    """Rows without a GloVe vector: seeded normal draws on the scale of the found vectors."""
    if not missing.any():
        return
    found = ~missing
    found[0] = False
    scale = float(matrix[found].std()) if found.any() else 1.0
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little"))
    matrix[missing] = rng.normal(0.0, scale, size=(int(missing.sum()), matrix.shape[1])).astype(np.float32)


def load_glove(glove: Path, words: Sequence[str], *, cache_dir: Path) -> WordVectors:
    """Word vectors for ``words`` (index order, ``words[0]`` the padding token) from a GloVe text file.

    Lines are read one at a time (GloVe 840B is 5.6 GB); only vocabulary words are parsed. The
    dimension is that of the file's first line. Words absent from GloVe get seeded random vectors
    on the scale of the found ones; row 0 is zero. The matrix is cached in ``cache_dir`` and reused
    when the same vocabulary meets the same unchanged GloVe file.

    Raises FileNotFoundError when ``glove`` does not exist, ValueError when it is malformed.
    """
    glove = Path(glove)
    if not glove.is_file():
        raise FileNotFoundError(
            f"GloVe file {glove} not found; download a GloVe text file (e.g. glove.840B.300d.txt from "
            "https://nlp.stanford.edu/projects/glove/) yourself and pass its path"
        )
    cache = Path(cache_dir) / _cache_name(words, glove)
    found_mask_cache = cache.with_suffix(".found.npy")
    if cache.is_file() and found_mask_cache.is_file():
        return WordVectors(np.load(cache), f"glove:{glove}", int(np.load(found_mask_cache).sum()))

    wanted = {word: i for i, word in enumerate(words) if i > 0}
    matrix: np.ndarray | None = None
    dim = 0
    have = np.zeros(len(words), dtype=bool)
    with open(glove, encoding="utf-8", errors="replace") as lines:
        for line_number, line in enumerate(lines, start=1):
            if matrix is None:
                dim = len(line.rstrip().split(" ")) - 1
                if dim < 1:
                    raise ValueError(f"{glove}:1: expected 'word v1 ... vD', got {line[:80]!r}")
                matrix = np.zeros((len(words), dim), dtype=np.float32)
            # Some GloVe releases have words containing spaces: the vector is the last `dim` fields.
            parts = line.rstrip().split(" ")
            if len(parts) <= dim:
                if parts[0] in wanted:
                    raise ValueError(f"{glove}:{line_number}: expected {dim} values after {parts[0]!r}, "
                                     f"got {len(parts) - 1}")
                continue
            row = wanted.get(" ".join(parts[:-dim]))
            if row is None or have[row]:
                continue
            matrix[row] = np.asarray(parts[-dim:], dtype=np.float32)
            have[row] = True
    if matrix is None:
        raise ValueError(f"{glove} is empty")

    missing = ~have
    missing[0] = False
    _fill_missing(matrix, missing, cache.name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for path, array in ((found_mask_cache, have), (cache, matrix)):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    return WordVectors(matrix, f"glove:{glove}", int(have.sum()))


def random_word_vectors(size: int, dim: int, *, seed: int) -> WordVectors:
    """Seeded N(0, 1) vectors for smoke tests (row 0 zero); never a silent fallback for GloVe."""
    matrix = np.random.default_rng(seed).normal(size=(size, dim)).astype(np.float32)
    matrix[0] = 0.0
    return WordVectors(matrix, "random", 0)
