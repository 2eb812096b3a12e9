"""The output directory: sharded HDF5, the manifest, the MASN index files (DESIGN.md section 2).

    OUT/shards/part-XXXXX.h5   written as part-XXXXX.h5.tmp, fsynced, then renamed: readers
                               never see a half-written shard
    OUT/shards/part-XXXXX.h5.records.jsonl
                               a Ray write task's manifest records (sidecar), renamed into
                               place after its shard: the commit of that shard
    OUT/manifest.jsonl         one JSON record per line, appended after a shard's rename
                               (local) or folded from the sidecars; the last record of a key wins
    OUT/masn/...               index files of HDF5 external links into the shards
    OUT/trajectories.h5        ``/K`` links to each video's trajectory group
    OUT/run.json               config, versions, weights, timings, failures
    OUT/.lock                  flock held by the running extraction

A shard holds, for each video key K, one dataset per feature at ``<name>/K`` (or
``<group>/K/<field>`` for grouped arrays such as ``detections/boxes``). Storage follows
Ray Data's Datasink lifecycle: ``on_write_start``, ``write`` (one shard), ``on_write_complete``.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extract.atomic import TMP_SUFFIX, atomic_write, fsync_dir
from extract.layout import TRAJECTORY_GROUP, nan_allowed, shard_path

__all__ = ["Committed", "OutputDir", "ShardSink", "VideoResult", "nan_allowed", "shard_path"]

SHARDS_DIR = "shards"
SHARD_PREFIX = "part-"
SHARD_SUFFIX = ".h5"
SIDECAR_SUFFIX = ".records.jsonl"  # part-XXXXX.h5 + this: the records committed with that shard
MANIFEST_FILE = "manifest.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
MASN_DIR = "masn"

TRAJECTORY_INDEX = "trajectories.h5"
TRAJECTORIES = TRAJECTORY_GROUP  # shard group; its boxes are NaN where a trajectory is absent

log = logging.getLogger("extract")

DONE = "done"
FAILED = "failed"



class OutputLocked(RuntimeError):
    """Another run holds the output directory."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class VideoResult:
    """What a worker produced for one video: features, or the reason it failed."""

    key: str
    path: str
    features: dict[str, np.ndarray] | None = None
    reason: str = ""
    info: dict = field(default_factory=dict)  # duration, grid size, frame size...

    @property
    def ok(self) -> bool:
        return self.features is not None


@dataclass(frozen=True)
class Committed:
    """A video's manifest record once committed: what the executors report to ``on_result``.

    ok: its features are in a shard (status done); else ``reason`` says why it failed.
    info: the whole record (shard, duration, grid size, frame size...).
    """

    key: str
    ok: bool
    reason: str
    info: dict

    @staticmethod
    def of(record: dict) -> Committed:
        return Committed(record["key"], record["status"] == DONE, record["reason"], record)


class OutputDir:
    """An output directory and its manifest."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.shards = self.root / SHARDS_DIR
        self.manifest_path = self.root / MANIFEST_FILE
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Take the directory for this process; refuse if another run holds it.

        The lock is an flock, so the kernel releases it when the holder dies, SIGKILL included.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLocked(
                f"output directory {self.root} is in use by another extract run ({holder}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {_now()}".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_manifest(self) -> dict[str, dict]:
        """Latest record per key; lines that are not records are skipped (``read_manifest_checked``)."""
        return self.read_manifest_checked()[0]

    def read_manifest_checked(self) -> tuple[dict[str, dict], list[str]]:
        """Latest record per key, and one message (with its line number) per line skipped.

        A line is skipped when it is not UTF-8, not JSON, or not a record (a JSON object with a
        string ``key``, a ``status`` of done or failed, and a ``shard`` when done). Skipping is
        safe: a video without a record is extracted again. A torn record (a run killed
        mid-append: a cut ``{"key": ...`` line) is expected after a crash and not reported.
        """
        records: dict[str, dict] = {}
        problems: list[str] = []
        if not self.manifest_path.exists():
            return records, problems
        lines = self.manifest_path.read_bytes().split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            record, problem = _parse_record(raw)
            if record is not None:
                records[record["key"]] = record
            elif problem:
                problems.append(f"{self.manifest_path}: line {number}: {problem}; skipped")
        return records, problems

    def append_manifest(self, records: Iterable[dict]) -> None:
        lines = "".join(_record_line(r) for r in records)
        if not lines:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.manifest_path, "a", encoding="utf-8") as f:
            # A torn line from a killed run would glue onto ours: start on a fresh line.
            if f.tell() > 0:
                with open(self.manifest_path, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        lines = "\n" + lines
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def done(self) -> dict[str, dict]:
        """Records of videos whose features are committed."""
        return {k: r for k, r in self.read_manifest().items() if r["status"] == DONE}

    def fold_sidecars(self) -> list[dict]:
        """Append the records of every sidecar to the manifest, then delete the sidecars.

        Exact whatever a crash interrupted: a sidecar exists only once its shard is renamed
        (a shard without one is an orphan for ``clean``); a record already the latest of its
        key is not appended again (a crash between the append and the deletes); a key in
        several sidecars (a write task retried after its worker died once its files were in
        place) keeps the highest-numbered one, and the other shard becomes an orphan. Call only
        while holding the lock. Returns the records appended, in sidecar order.
        """
        paths = sorted(self.shards.glob(f"{SHARD_PREFIX}*{SIDECAR_SUFFIX}"), key=_shard_number) if self.shards.exists() else []
        if not paths:
            return []
        chosen: dict[str, dict] = {}
        for path in paths:
            for record in self._read_sidecar(path):
                chosen.pop(record["key"], None)
                chosen[record["key"]] = record
        latest = self.read_manifest()
        new = [r for r in chosen.values() if latest.get(r["key"]) != r]
        self.append_manifest(new)
        for path in paths:
            path.unlink()
        fsync_dir(self.shards)
        log.info("committed %d record(s) of %d shard sidecar(s)", len(new), len(paths))
        return new

    def _read_sidecar(self, path: Path) -> list[dict]:
        """A sidecar's records; a done record whose shard is gone is dropped (its video is redone)."""
        records = []
        for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            record, problem = _parse_record(raw)
            if record is None:
                log.warning("%s: line %d: %s; skipped (its video, if any, is extracted again)", path, number,
                            problem or "torn record")
            elif record["status"] == DONE and not (self.shards / record["shard"]).is_file():
                log.warning("%s: %s is missing; %s is extracted again", path, record["shard"], record["key"])
            else:
                records.append(record)
        return records

    def clean(self) -> list[Path]:
        """Commit the sidecars left by a stopped run, then remove its leftovers: temp files, and
        shards no done record points to.

        Call only while holding the lock. Returns the removed paths.
        """
        if not self.shards.exists():
            return []
        self.fold_sidecars()
        referenced = {r["shard"] for r in self.done().values()}
        removed = []
        for path in sorted(self.shards.iterdir()):
            if path.name.endswith(TMP_SUFFIX) or (path.suffix == SHARD_SUFFIX and path.name not in referenced):
                path.unlink()
                removed.append(path)
        return removed


def _shard_number(path: Path) -> int:
    """The number of ``part-XXXXX...``, or -1 for a name without one."""
    digits = path.name[len(SHARD_PREFIX) :].split(".")[0]
    return int(digits) if path.name.startswith(SHARD_PREFIX) and digits.isdigit() else -1


def _record_line(record: dict) -> str:
    """``record`` as one JSON line; a path that is not UTF-8 (surrogate escapes) is written as
    ``\\udcXX`` escapes, so the line stays UTF-8 and reads back as the same string."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record)
    return line + "\n"


def _parse_record(raw: bytes) -> tuple[dict | None, str]:
    """A manifest line as a record, or (None, why it is not one; "" for a torn record)."""
    torn = raw.startswith(b'{"key": ')  # what append_manifest writes, cut short by a kill
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if torn and e.reason == "unexpected end of data":
            return None, ""
        return None, f"not UTF-8 ({e.reason} at byte {e.start})"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return None, "" if torn else f"not JSON ({e.msg})"
    if not isinstance(record, dict):
        return None, f"not a record (a JSON {type(record).__name__}, not an object)"
    if not isinstance(record.get("key"), str) or not record["key"]:
        return None, "not a record (no string key)"
    if record.get("status") not in (DONE, FAILED):
        return None, f"not a record (status {record.get('status')!r}, not {DONE!r} or {FAILED!r})"
    if record["status"] == DONE and not isinstance(record.get("shard"), str):
        return None, "not a record (done without a shard)"
    return record, ""


class ShardSink:
    """Writes committed shards; the storage interface both executors use.

    ``write`` runs where the features are (a Ray worker, or in-process) and returns the
    manifest records. The local executor commits them with ``on_write_complete`` (a manifest
    append right after the rename, by the same process); a Ray write task commits them itself
    with ``write_sidecar``, since its driver learns of them only when every task is done.

    Args:
        out: the output directory.
        attrs: run metadata stored as attributes of every shard (config, weights, versions).
    """

    def __init__(self, out: OutputDir, attrs: dict, record_extra: dict | None = None) -> None:
        self.out = out
        self.attrs = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in attrs.items()}
        self.record_extra = dict(record_extra or {})  # added to every record (the settings fingerprint)

    def on_write_start(self) -> None:
        self.out.shards.mkdir(parents=True, exist_ok=True)

    def write(self, results: Sequence[VideoResult]) -> list[dict]:
        """Write the successful results as one new shard; return manifest records for all."""
        import h5py

        good = [r for r in results if r.ok]
        records = [self._record(r, FAILED) for r in results if not r.ok]
        if not good:
            return records
        # The shard is built in memory and written with plain file I/O: HDF5 handles a failing
        # write (a full disk) badly, up to crashing the process, while os.write raises OSError.
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            f.attrs.update(self.attrs)
            for r in good:
                for name, array in r.features.items():
                    f.create_dataset(shard_path(name, r.key), data=array)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        tmp, final = self._allocate()
        atomic_write(final, data, tmp=tmp)
        records += [self._record(r, DONE, shard=final.name, sha256=digest, shard_bytes=len(data)) for r in good]
        return records

    def on_write_complete(self, records: Sequence[dict]) -> None:
        self.out.append_manifest(records)

    def write_sidecar(self, records: Sequence[dict]) -> Path | None:
        """Commit ``records`` (``write``'s) where they were written: ``<shard>.records.jsonl``,
        renamed into place after the shard; ``OutputDir.fold_sidecars`` moves them to the
        manifest. A batch without a shard (every video failed) takes a shard number of its own.
        """
        if not records:
            return None
        shard, claimed = next((r["shard"] for r in records if r["status"] == DONE), None), None
        if shard is None:
            claimed, final = self._allocate()
            shard = final.name
        try:
            return atomic_write(self.out.shards / (shard + SIDECAR_SUFFIX), "".join(_record_line(r) for r in records))
        finally:
            if claimed is not None:
                claimed.unlink()

    def _allocate(self) -> tuple[Path, Path]:
        """Claim the next free shard number with O_EXCL, safe between concurrent writers."""
        n = max((_shard_number(p) for p in self.out.shards.glob(f"{SHARD_PREFIX}*")), default=-1) + 1
        while True:
            final = self.out.shards / f"{SHARD_PREFIX}{n:05d}{SHARD_SUFFIX}"
            tmp = final.with_name(final.name + TMP_SUFFIX)
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                n += 1
                continue
            if final.exists():
                tmp.unlink()
                n += 1
                continue
            return tmp, final

    def _record(self, r: VideoResult, status: str, **extra) -> dict:
        return {"key": r.key, "path": r.path, "status": status, "reason": r.reason, **extra, **self.record_extra,
                **r.info, "time": _now()}
