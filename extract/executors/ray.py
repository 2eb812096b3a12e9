"""Ray Data executor: the local executor's work, streamed over a cluster (DESIGN.md section 4).

    {key, path}, one video per row and per block
      --map(decode), CPU tasks-->                  {key, path, reason, stream, frames, grid, pts, ...}
         a video of several parts travels without frames (stream): the actor decodes it part by part
      --map_batches(_ExtractorActor), actors-->    {key, path, reason, info, features}
         shard_videos videos per call; one actor per GPU holds every model, built once
      --write_datasink(ShardDatasink), CPU tasks-->  one shard per actor batch (temp file, rename),
                                                   then its records beside it (sidecar, rename)
      --driver-->                                  sidecars folded into the manifest every few seconds

Every failure is data, never a lost block: decode and model errors come out of the UDFs as
rows with a reason, and become failed manifest records. A video has its own block until the
actors batch it, so nothing upstream of the models can take another video down with it. A
killed actor is restarted by Ray and its batches are retried on it.

A shard is committed by its write task: the sidecar ``part-XXXXX.h5.records.jsonl`` renamed
into place after the shard (``ShardSink.write_sidecar``). Ray Data's public
``write_datasink`` reports write results only once every task is done, so a driver thread
folds the sidecars into the manifest every ``FOLD_EVERY_S`` seconds (the manifest and the
progress then move as shards land), and once more as the job ends or stops (an error, SIGTERM
from ``ray job stop``); a driver killed outright leaves the rest to the next run, which folds
them before it computes what is left (``OutputDir.clean``). Nothing committed is lost and
nothing is committed twice.

Per-video features are bit-identical to the local executor's on the same device: the
extractor splits each video's steps into batches by a rule of the video alone and runs the
detector on batches of one video's frames, so a video's features do not depend on the videos
that share its actor call, and a CPU actor sets torch's thread count as a local run does.

CPU budget, so that the models never starve the decoding that feeds them: a decode task takes
1 CPU, a GPU actor ``GPU_ACTOR_CPUS``, a write task ``WRITE_CPUS``; on a cluster without GPUs
one CPU actor reserves ``CPU_ACTOR_CPUS``, less than a core.

OUT must be on a filesystem every node sees: write tasks create and rename the shards and
sidecars on the workers, and the driver appends the manifest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray
from ray.data import Datasink
from ray.data.block import BlockAccessor
from ray.data.datasource.datasink import WriteResult

from extract.datasets.base import VideoRecord
from extract.decoded import from_row
from extract.sampling import SamplingConfig
from extract.store import Committed, ShardSink, VideoResult
from extract.video import DecodeConfig
from extract.worker import extract_group, open_record

if TYPE_CHECKING:
    from extract.config import RunConfig

log = logging.getLogger("extract")

GPU_ACTOR_CPUS = 1.0  # a GPU actor's host thread: moves frames, resizes, runs the detector's CPU parts
CPU_ACTOR_CPUS = 0.5  # the one CPU actor of a GPU-less cluster: under a core, so decoding always runs
WRITE_CPUS = 0.25  # an HDF5 shard write is mostly I/O
FOLD_EVERY_S = 5.0  # how often the driver folds the write tasks' sidecars into the manifest


def execute_ray(
    config: RunConfig,
    todo: Sequence[VideoRecord],
    weights: dict,
    sink: ShardSink,
    on_result: Callable[[Committed], None],
) -> None:
    """Process ``todo`` on a Ray cluster and commit every batch through ``sink``.

    Args:
        config: the run; ``address``, ``num_gpus``, ``decode_workers``, ``shard_videos`` and
            ``no_progress_timeout_s`` shape the execution.
        weights: checkpoint path (None for random) per model role, resolved by the driver;
            an actor whose node lacks a path resolves that role again locally.
        sink: the output; its ``write`` and ``write_sidecar`` run in Ray write tasks.
        on_result: called in the driver for each video once its record is in the manifest.
    """
    if not todo:
        return
    started = _connect(config.address)
    try:
        ds = _build(config, todo, weights)
        ds.context.execution_no_progress_timeout_s = config.no_progress_timeout_s
        # Per-operator bars on a terminal (Ray's tqdm bars show nothing there in 2.60), log
        # lines otherwise. The context is this dataset's copy: the process default is untouched.
        ds.context.enable_rich_progress_bars = True
        ds.context.use_ray_tqdm = False
        datasink = ShardDatasink(sink, on_result)
        try:
            with datasink.committing_every(FOLD_EVERY_S):
                ds.write_datasink(datasink, ray_remote_args={"num_cpus": WRITE_CPUS})
        finally:
            datasink.commit()  # on a failure or a stop, the shards committed so far
        # A write task retried after its worker died may have renamed a shard that the retry
        # then wrote again; only the retry's shard is in the manifest.
        removed = sink.out.clean()
        if removed:
            log.info("removed %d shard(s) left by retried write tasks", len(removed))
    finally:
        if started:
            ray.shutdown()


def _connect(address: str | None) -> bool:
    """Join ``address`` (``auto``: the cluster on this machine), or start a local cluster.

    Returns whether this call started a cluster, which the caller then shuts down. A Ray
    session already open in this process is used as it is.
    """
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address)
        return False
    ray.init()  # every CPU and GPU of this machine, as Ray detects them (cgroup limits included)
    return True


def _build(config: RunConfig, todo: Sequence[VideoRecord], weights: dict):
    """The lazy dataset: decode tasks, then model actors; nothing runs until it is consumed."""
    gpus = _gpu_actors(config)
    if gpus:
        actor_resources = {"num_gpus": 1, "num_cpus": GPU_ACTOR_CPUS}
        device = "cuda"
    else:
        actor_resources = {"num_cpus": CPU_ACTOR_CPUS}
        device = "cpu"
    log.info(
        "ray: %d video(s), %s, decode tasks %s, %d videos per batch",
        len(todo),
        f"{gpus} GPU actor(s)" if gpus else "1 CPU actor (no GPU)",
        config.decode_workers or "as CPUs allow",
        config.shard_videos,
    )
    rows = [{"key": r.key, "path": str(r.path)} for r in todo]
    decode_pool = ray.data.TaskPoolStrategy(size=config.decode_workers) if config.decode_workers else None
    return (
        ray.data.from_items(rows, override_num_blocks=len(rows))
        .map(_decode_row, fn_kwargs={"sampling": config.sampling, "decode": config.decode}, num_cpus=1, compute=decode_pool)
        .map_batches(
            _ExtractorActor,
            fn_constructor_kwargs={"config": config, "weights": weights, "device": device},
            batch_size=config.shard_videos,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(gpus, 1)),
            **actor_resources,
        )
    )


def _gpu_actors(config: RunConfig) -> int:
    """How many GPU actors to start: ``config.num_gpus``, or every GPU in the cluster; 0 = CPU."""
    if config.runtime.device == "cpu":
        return 0
    available = int(ray.cluster_resources().get("GPU", 0))
    wanted = available if config.num_gpus is None else config.num_gpus
    if wanted > available:
        # An autoscaling cluster adds GPU nodes on demand; a fixed one would wait until the
        # no-progress timeout, hence the warning rather than an error.
        log.warning("ray: %d GPU actor(s) requested, the cluster has %d GPU(s) now", wanted, available)
    return wanted


# Rows. Decoded frames travel as numpy arrays; features are pickled per video because their
# names and shapes vary (failed videos have none), which Arrow columns cannot hold as they are.


def _decode_row(row: dict, sampling: SamplingConfig, decode: DecodeConfig) -> dict:
    """Decode one video into its ``extract.decoded`` row (never raises), in a child process of
    this task's worker: a segfault in the decoder fails this video (``CRASHED``), not the run."""
    from extract.decode_pool import decode_contained

    return decode_contained(VideoRecord(row["key"], Path(row["path"])), sampling, decode)


def _result_columns(results: Sequence[VideoResult]) -> dict[str, np.ndarray]:
    """A batch of result rows; object arrays keep the pickled bytes exact (no ``S`` dtype)."""
    return {
        "key": np.array([r.key for r in results], dtype=object),
        "path": np.array([r.path for r in results], dtype=object),
        "reason": np.array([r.reason for r in results], dtype=object),
        "info": np.array([json.dumps(r.info) for r in results], dtype=object),
        "features": np.array(
            [pickle.dumps(r.features, protocol=pickle.HIGHEST_PROTOCOL) if r.ok else b"" for r in results],
            dtype=object,
        ),
    }


def _results(batch: dict[str, np.ndarray]) -> list[VideoResult]:
    """The inverse of ``_result_columns``."""
    return [
        VideoResult(
            str(key), str(path), features=pickle.loads(features) if features else None, reason=str(reason),
            info=json.loads(info),
        )
        for key, path, reason, info, features in zip(
            batch["key"], batch["path"], batch["reason"], batch["info"], batch["features"]
        )
    ]


class _ExtractorActor:
    """Every model of the run, built once per actor; each call extracts one batch of videos.

    Args:
        config: the run (model settings, stages, sampling, linking).
        weights: the driver's resolved checkpoints (see ``_local_weights``).
        device: ``cuda`` (the GPU Ray assigned to this actor) or ``cpu``.
    """

    def __init__(self, config: RunConfig, weights: dict, device: str) -> None:
        # Model code is imported here, in the actors only: decode and write tasks import this
        # module too, and need none of it.
        from extract.features.build import build_extractor
        from extract.features.external import external_detections
        from extract.features.runtime import configure_threads

        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"device": device})})
        # The thread count changes CPU results (the order of float reductions), so a CPU actor
        # takes the local executor's: bit-identical features on the same machine. A GPU actor
        # keeps Ray's default, one thread per reserved CPU, unless threads are set.
        if config.runtime.threads or device == "cpu":
            configure_threads(config)
        # External detections learn each batch's keys as it comes (see __call__).
        self.detections = external_detections(config, {})
        self.extractor = build_extractor(config, config.stages, _local_weights(config, weights), config.linking,
                                         detections=self.detections)
        self.sampling, self.decode = config.sampling, config.decode

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        failed, ok = [], []
        for i in range(len(batch["key"])):
            row = {name: column[i] for name, column in batch.items()}
            record = VideoRecord(str(row["key"]), Path(row["path"]))
            if self.detections is not None:
                self.detections.keys[str(record.path)] = record.key
            video = from_row(row, self.sampling)
            if video is None:  # several parts: streamed from the file here
                video = open_record(record, self.sampling, self.decode)
            if isinstance(video, VideoResult):
                failed.append(video)
            else:
                ok.append((record, video))
        extracted = extract_group(self.extractor, *zip(*ok)) if ok else []
        return _result_columns(failed + extracted)


def _local_weights(config: RunConfig, weights: dict) -> dict:
    """The driver's checkpoint paths, resolved again on this node where a path is missing."""
    from extract.features.build import required_weights
    from extract.models.weights import resolve_weights

    specs = required_weights(config, config.stages)
    return {
        role: path if path is None or Path(path).is_file() else resolve_weights(specs[role], config.weights)
        for role, path in weights.items()
    }


class ShardDatasink(Datasink):
    """Ray Data's write lifecycle on ``ShardSink``.

    ``write`` runs in a write task and stores the rows it gets (one actor batch) as one
    shard, then its manifest records as the shard's sidecar: each a temp file, fsync, rename.
    ``commit`` (``on_write_complete``, and ``committing_every`` during the job) folds the
    sidecars into the manifest, in the driver, and reports each video once to ``on_result``.
    """

    def __init__(self, sink: ShardSink, on_result: Callable[[Committed], None]) -> None:
        self.sink = sink
        self.on_result = on_result
        self._reported: set[str] = set()  # a retried write task commits a key again: reported once
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # on_result drives the driver's progress bar and counters; write tasks need only the sink.
        return {"sink": self.sink, "on_result": None, "_reported": set(), "_lock": None}

    def on_write_start(self, schema=None) -> None:
        self.sink.on_write_start()

    def write(self, blocks: Iterable, ctx) -> int:
        results = [r for block in blocks for r in _results(BlockAccessor.for_block(block).to_batch_format("numpy"))]
        self.sink.write_sidecar(self.sink.write(results))
        return len(results)

    def on_write_complete(self, write_result: WriteResult) -> None:
        self.commit()

    def commit(self) -> None:
        """Fold every sidecar written so far into the manifest (a no-op when none is left)."""
        with self._lock:
            for record in self.sink.out.fold_sidecars():
                if record["key"] not in self._reported:
                    self._reported.add(record["key"])
                    self.on_result(Committed.of(record))

    @contextlib.contextmanager
    def committing_every(self, seconds: float):
        """``commit`` in a driver thread every ``seconds`` while the block runs. A failed fold is
        logged and retried at the next; the caller's final ``commit`` raises what persists."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds):
                try:
                    self.commit()
                except Exception as e:  # noqa: BLE001 - the final commit, in the caller, raises it
                    log.warning("folding the shard sidecars into the manifest failed (%s); retrying", e)

        thread = threading.Thread(target=loop, name="fold-sidecars", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

