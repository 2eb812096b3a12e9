"""Reading a finished run for export: its config (run.json), its done videos, their shard arrays."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from extract.store import RUN_FILE, OutputDir, shard_path


def run_config(out: Path) -> dict:
    """The resolved config a run saved in ``OUT/run.json``."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run.json; is {out} the output directory of an `extract run`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable run record ({e})") from e


def done_with(out: OutputDir, stages: Iterable[str]) -> dict[str, dict]:
    """Done manifest records whose video has every one of ``stages``."""
    need = set(stages)
    return {k: r for k, r in out.done().items() if need <= set(r.get("stages", ()))}


def read_arrays(out: OutputDir, records: dict[str, dict], keys: Sequence[str],
                names: Sequence[str]) -> Iterator[tuple[str, dict]]:
    """``(key, {name: ndarray})`` for each of ``keys`` in the given order, each shard opened once.

    Arrays absent from a shard are left out of the dict. Keys are grouped by shard, so the
    order is restored by holding the other videos of a shard until their turn.
    """
    import h5py

    by_shard: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        by_shard[records[key]["shard"]].append(key)
    pending: dict[str, dict] = {}
    for key in keys:
        if key not in pending:
            shard = records[key]["shard"]
            with h5py.File(out.shards / shard, "r") as f:
                for k in by_shard[shard]:
                    pending[k] = {n: f[shard_path(n, k)][()] for n in names if shard_path(n, k) in f}
        yield key, pending.pop(key)
