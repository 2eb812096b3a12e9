"""Two output directories compared array by array: the same done videos with the same
arrays, bit for bit (NaN equal to NaN). ``scripts/compare_outputs.py`` and the tests use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extract.store import OutputDir


def read_features(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every array of every done video in OUT, read from the shard its record names."""
    import h5py

    from extract.outputs import video_arrays

    arrays = {}
    for key, record in OutputDir(out).done().items():
        with h5py.File(Path(out) / "shards" / record["shard"], "r") as f:
            arrays[key] = {name: ds[()] for name, ds in video_arrays(f, key).items()}
    return arrays


def differences(got: Path, want: Path) -> list[str]:
    """Where ``got`` differs from ``want``; empty when every done video's every array is
    identical (same names, dtypes, shapes and bits; NaN where the other has NaN)."""
    a, b = read_features(got), read_features(want)
    problems = [f"video {k} only in {got}" for k in sorted(a.keys() - b.keys())]
    problems += [f"video {k} only in {want}" for k in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        x, y = a[key], b[key]
        problems += [f"{key}: array {n} only in {got}" for n in sorted(x.keys() - y.keys())]
        problems += [f"{key}: array {n} only in {want}" for n in sorted(y.keys() - x.keys())]
        for name in sorted(x.keys() & y.keys()):
            if x[name].dtype != y[name].dtype or x[name].shape != y[name].shape:
                problems.append(f"{key}/{name}: {x[name].dtype}{x[name].shape} vs {y[name].dtype}{y[name].shape}")
            elif not np.array_equal(x[name], y[name], equal_nan=x[name].dtype.kind == "f"):
                problems.append(f"{key}/{name}: values differ")
    return problems
