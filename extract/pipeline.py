"""One extraction run: check everything, lock OUT, skip what is done, execute, index, report.

Every check that can fail (annotations, weights, the lock) happens before any video is
touched. The executor only sees the videos still missing, so a rerun after a crash (SIGKILL
included) completes exactly those.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from extract import __version__
from extract.atomic import atomic_write_json
from extract.config import RunConfig, resolve_runtime
from extract.fingerprint import FINGERPRINT, check_resume, fingerprint, fingerprint_fields, known_fingerprints
from extract.progress import VideoCounter
from extract.index_files import build_index
from extract.integrity import shard_damage
from extract.store import FAILED, RUN_FILE, Committed, OutputDir, ShardSink, VideoResult
from extract.timing import NO_TIMER

log = logging.getLogger("extract")


class StorageError(RuntimeError):
    """Writing a shard or the manifest failed (disk full, permissions): the run stops."""


@dataclass
class RunSummary:
    """What a run did; ``failures`` lists (key, reason) of every video failed in OUT."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    wall_s: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT) or SIGTERM; run.json and the index cover what was done
    failures: list[tuple[str, str]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # key -> video path of each failure, for its line

    @property
    def videos_per_s(self) -> float:
        """Videos extracted (done) per second of wall time; failed and skipped ones take little time
        and would make a mostly failing run look fast."""
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        head = (
            f"videos: {self.done} done, {self.failed} failed, {self.skipped} skipped (already done); "
            f"{self.frames} grid frames; {self.wall_s:.1f} s wall, {self.videos_per_s:.2f} videos/s extracted"
        )
        return [head] + [f"failed {key} ({self.paths.get(key, '?')}): {reason}" for key, reason in self.failures]


class ReportingSink:
    """``sink`` that reports each video to ``counter`` as extracted when its results reach the sink,
    before the shard is written: progress moves as videos are extracted, not as shards commit."""

    def __init__(self, sink: ShardSink, counter: VideoCounter) -> None:
        self._sink, self._counter = sink, counter

    def write(self, results: Sequence[VideoResult]) -> list[dict]:
        for result in results:
            self._counter.extracted(result.key)
        return self._sink.write(results)

    def __getattr__(self, name: str):
        return getattr(self._sink, name)


def package_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries that compute or store features; with
    ``git_commit`` (and ``git_dirty``: "true" when tracked files differ) when the package runs
    from a git checkout."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "vqa-extract": __version__}
    for dist in ("torch", "torchvision", "pytorchvideo", "decord2", "av", "h5py", "numpy", "pydantic", "ray"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return versions | _git_state(Path(__file__).resolve().parent.parent)


def _git_state(root: Path) -> dict[str, str]:
    """The commit of the checkout at ``root`` and whether its tracked files are modified; {} when
    ``root`` is not the top of a git checkout (an installed wheel) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return {}  # a site-packages that happens to live inside some other repository
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": "true" if dirty else "false"}
    except (OSError, subprocess.SubprocessError):
        return {}


def describe_weights(config: RunConfig, resolved: dict[str, Path | None]) -> dict[str, str]:
    from extract.features.build import required_weights

    specs = required_weights(config, config.stages)
    return {
        role: (f"{specs[role].name} from {path}" if path else "RANDOM INITIALISATION (seed "
               f"{config.seed}) - not pretrained, smoke tests only")
        for role, path in resolved.items()
    }


def run_pipeline(config: RunConfig, *, progress: bool | None = None, timer=NO_TIMER) -> RunSummary:
    """Extract the features of ``config.dataset`` into ``config.out``.

    ``timer`` (``extract.timing``) gets the local executor's sections: decode, write and the
    model passes (``extract bench``); the Ray executor times nothing.

    Raises before any work: AnnotationError (bad annotations), PreflightError (Ray missing, no
    GPU, OUT a file or read-only, none of the videos found), WeightsUnavailable (offline,
    weights not cached), OutputLocked (another run on the same OUT), SettingsChanged (OUT holds
    videos made with other settings, and ``config.reextract`` is off).
    """
    from extract.datasets import load_dataset
    from extract.features.build import resolve_all_weights
    from extract.features.runtime import resolve_device
    from extract.preflight import check_run
    from extract.progress import Reporter

    start = time.monotonic()
    root = config.data_root or config.videos
    if root is None:
        raise ValueError(f"dataset {config.dataset!r} needs --data-root or --videos")
    dataset = load_dataset(config.dataset, root, videos_dir=config.videos if config.data_root else None)
    records = dataset.videos[: config.limit] if config.limit is not None else dataset.videos
    check_run(config, records)
    out = OutputDir(config.out)
    out.lock()
    try:
        weights = resolve_all_weights(config, config.stages)
        weights_desc = describe_weights(config, weights)
        if any(path is None for path in weights.values()):
            log.warning("RANDOM WEIGHTS: features are not pretrained and are only fit for smoke tests")
        out.fold_sidecars()  # a killed Ray driver's commits: the settings check must see them
        for problem in out.read_manifest_checked()[1]:
            log.warning("%s (its video, if any, is extracted again)", problem)
        fields = fingerprint_fields(config, str(resolve_device(config.runtime.device)))
        settings = {"sha256": fingerprint(fields), "fields": fields}
        run_json = _read_run_json(out)
        known = known_fingerprints(run_json)
        if not config.reextract:
            check_resume(out.done(), settings["sha256"], fields, known, str(out.root))
        _record_settings(out, run_json, config, settings, known)
        removed = out.clean()
        if removed:
            log.info("removed %d leftover shard(s) of an interrupted run", len(removed))
        todo = [r for r in records if r.key not in _reusable(out, config)]
        summary = RunSummary(skipped=len(records) - len(todo))
        log.info("%d videos: %d to extract, %d already done", len(records), len(todo), summary.skipped)
        if config.executor == "local":
            # Recorded as used; Ray actors resolve "auto" and 0 each on its own node.
            config = config.model_copy(update={"runtime": resolve_runtime(config.runtime)})
        attrs = {"config": config.model_dump_json(), "weights": weights_desc, "versions": package_versions()}
        sink = ShardSink(out, attrs, record_extra={FINGERPRINT: settings["sha256"]})
        # Ray draws its own per-operator bars; two live displays garble a terminal.
        mode = "log" if config.executor == "ray" or progress is False else "bar" if progress else "auto"
        bar = Reporter(mode).videos(len(todo))

        def on_result(result: Committed) -> None:
            summary.done += result.ok
            summary.failed += not result.ok
            summary.frames += result.info.get("grid", 0)
            bar.advance(result.ok, result.key)

        try:
            if config.executor == "local":
                from extract.executors.local import execute_local
                from extract.decode_pool import start_forkserver
                from extract.features.build import build_extractor
                from extract.features.runtime import configure_threads

                start_forkserver()  # its imports overlap the model building below
                # Ray builds the models in its actors only; the driver builds none.
                configure_threads(config)
                from extract.features.external import external_detections

                detections = external_detections(config, {str(r.path): r.key for r in todo})
                extractor = build_extractor(config, config.stages, weights, config.linking, detections=detections,
                                            timer=timer)
                execute_local(config, todo, extractor, ReportingSink(sink, bar), on_result, timer=timer,
                              on_decoded=bar.decoded)
            else:
                from extract.executors.ray import execute_ray

                execute_ray(config, todo, weights, sink, on_result)
        except OSError as e:
            # Decoding errors never get here (they fail their video); this is the output side.
            raise StorageError(
                f"writing to {out.root} failed ({e}). Committed videos are kept and no partial shard is "
                "visible: fix the cause (disk space, permissions) and rerun the same command to resume."
            ) from e
        except KeyboardInterrupt as e:
            # Ctrl-C or SIGTERM: what is committed is indexed and recorded below, then the interrupt goes on.
            summary.interrupted = True
            interrupt = e
        finally:
            bar.close()
        build_index(out, config.dataset)
        if not summary.interrupted and out.clean():  # shards whose every video was extracted again
            log.info("removed shard(s) whose videos were all extracted again (more stages, --reextract)")
        failed = {k: r for k, r in sorted(out.read_manifest().items()) if r["status"] == FAILED}
        summary.failures = [(k, r["reason"]) for k, r in failed.items()]
        # A non-UTF-8 name (surrogate escapes) is shown as \xNN, as its key is: terminals take it.
        summary.paths = {k: os.fsencode(r.get("path", "?")).decode("utf-8", "backslashreplace")
                         for k, r in failed.items()}
        summary.wall_s = time.monotonic() - start
        _write_run_json(out, config, weights_desc, summary, len(records), _weights_sha256(weights), settings, known,
                        _detections_record(config, records))
        if summary.interrupted:
            raise interrupt
        return summary
    finally:
        out.unlock()


def _detections_record(config: RunConfig, records) -> dict | None:
    """run.json's ``detections``: the source, its policy and tolerance, the sha256 of each file used."""
    if config.detections.path is None:
        return None
    from extract.detections import DetectionSource, default_tolerance

    source = DetectionSource(config.detections.path, missing=config.detections.missing)
    tolerance = config.detections.tolerance_s
    return source.describe([r.key for r in records]) | {
        "tolerance_s": tolerance if tolerance is not None else default_tolerance(config.sampling.fps)}


def _reusable(out: OutputDir, config: RunConfig) -> set[str]:
    """Keys whose done record this run keeps: all of its stages, its shard intact, no --reextract.

    Videos of a missing or damaged shard are logged and extracted again.
    """
    if config.reextract:
        return set()
    done = out.done()
    damage = shard_damage(out, done, checksums=config.check_shards)
    for shard, reason in damage.items():
        keys = sorted(k for k, r in done.items() if r["shard"] == shard)
        log.warning("%s: extracting its %d video(s) again (%s)", reason, len(keys),
                    ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else ""))
    return {k for k, r in done.items() if set(config.stages) <= set(r.get("stages", ())) and r["shard"] not in damage}


def _record_settings(out: OutputDir, run: dict, config: RunConfig, settings: dict, known: dict[str, dict]) -> None:
    """Add this run's fingerprint fields to run.json before any video is extracted: a run killed
    before its end (SIGKILL, a lost Ray driver) leaves committed videos, and the next run must
    be able to name the settings they were made with. ``run``: run.json as read; the end of the
    run rewrites it whole."""
    run = dict(run)
    run.setdefault("config", config.model_dump(mode="json"))
    run["fingerprints"] = known | {settings["sha256"]: settings["fields"]}
    atomic_write_json(out.root / RUN_FILE, run, indent=2)


def _read_run_json(out: OutputDir) -> dict:
    import json

    try:
        run = json.loads((out.root / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def _weights_sha256(resolved: dict[str, Path | None]) -> dict[str, str | None]:
    """sha256 of each weights file by role (None: random initialisation); hashed once when checked."""
    from extract.models.weights import file_sha256

    return {role: file_sha256(path) if path else None for role, path in resolved.items()}


def _write_run_json(out: OutputDir, config: RunConfig, weights: dict, summary: RunSummary, total: int,
                    weights_sha256: dict[str, str | None], settings: dict, known: dict[str, dict],
                    detections: dict | None) -> None:
    manifest = out.read_manifest()
    # Every fingerprint still in the manifest, so that verify and a later refusal can name fields.
    in_use = {r.get(FINGERPRINT) for r in manifest.values()}
    run = {
        "config": config.model_dump(mode="json"),
        "fingerprint": settings,
        "fingerprints": {k: v for k, v in known.items() if k in in_use} | {settings["sha256"]: settings["fields"]},
        "weights": weights,
        "weights_sha256": weights_sha256,
        "detections": detections,
        "versions": package_versions(),
        "videos": total,
        "this_run": {k: v for k, v in asdict(summary).items() if k not in ("failures", "paths")}
        | {"videos_per_s": summary.videos_per_s},
        "totals": {
            "done": sum(r["status"] == "done" for r in manifest.values()),
            "failed": sum(r["status"] == FAILED for r in manifest.values()),
        },
        "failures": dict(summary.failures),
    }
    atomic_write_json(out.root / RUN_FILE, run, indent=2)
