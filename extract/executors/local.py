"""In-process executor, the embedded default: child processes decode ahead while the models run.

Videos are decoded by ``decode_workers`` child processes (``DecodePool``: a decoder crash fails
one video, not the run) and taken in submission order, grouped ``shard_videos`` at a time,
extracted with their steps sharing model batches, and each group is committed as one shard.
A crash loses at most the group in flight.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

from extract.config import RunConfig, RuntimeConfig, resolve_runtime
from extract.datasets.base import VideoRecord
from extract.decode_pool import DecodePool
from extract.features.extractor import FeatureExtractor
from extract.features.runtime import cpu_count
from extract.store import Committed, ShardSink, VideoResult
from extract.timing import NO_TIMER, NullTimer, StageTimer
from extract.worker import extract_group

log = logging.getLogger("extract")

# Videos queued per decoding child: one decoding, three waiting. Videos are taken in order, so with
# one waiting a slow video idled the other children: 2 children decoded 1.55x one child's rate with
# 2 queued each and 1.64x with 4 (medians of 6 runs on real TGIF GIFs, 2 vCPUs). A one-part video's
# frames stay under decode.part_mb, which bounds what waits.
AHEAD_PER_WORKER = 4


def decode_workers(config: RunConfig) -> int:
    """``config.decode_workers``, or the cores left after the model threads (at least 1)."""
    return config.decode_workers or default_decode_workers(resolve_runtime(config.runtime))


def default_decode_workers(runtime: RuntimeConfig) -> int:
    """The cores that ``runtime`` (resolved) leaves: on a CPU its model workers' intra-op threads
    take them; on a GPU each model worker takes one core to feed the device."""
    used = runtime.model_workers * (runtime.threads if runtime.device == "cpu" else 1)
    return max(1, cpu_count() - used)


def execute_local(
    config: RunConfig,
    todo: Sequence[VideoRecord],
    extractor: FeatureExtractor,
    sink: ShardSink,
    on_result: Callable[[Committed], None],
    *,
    timer: NullTimer | StageTimer = NO_TIMER,
    on_decoded: Callable[[str], None] = lambda key: None,
) -> None:
    """Process ``todo`` and commit every group through ``sink``; ``on_result`` sees each video's
    committed record, ``on_decoded`` each key as its decoding ends (progress between commits).
    ``timer`` gets the sections ``decode`` (summed over the decoding children) and ``write``
    (the extractor's own timer, the model sections)."""
    workers = decode_workers(config)
    log.debug("local: %d decoding child process(es)", workers)
    decoder = DecodePool(config.sampling, config.decode, workers, timer=timer)
    ahead = max(config.prefetch, AHEAD_PER_WORKER * workers)
    sink.on_write_start()
    try:
        for group in _decoded_groups(decoder, todo, ahead, config.shard_videos, on_decoded):
            _commit(extractor, sink, group, on_result, timer)
    finally:
        decoder.close()


def _decoded_groups(decoder: DecodePool, todo: Sequence[VideoRecord], ahead: int, size: int,
                    on_decoded: Callable[[str], None]):
    """Groups of (record, decoded) of up to ``size``, in ``todo``'s order, ``ahead`` decoding."""
    pending: deque = deque()
    queue = iter(todo)
    for record in queue:
        pending.append((record, decoder.submit(record)))
        if len(pending) >= ahead:
            break
    group = []
    while pending:
        record, handle = pending.popleft()
        nxt = next(queue, None)
        if nxt is not None:
            pending.append((nxt, decoder.submit(nxt)))
        group.append((record, decoder.result(record, handle)[0]))
        on_decoded(record.key)
        if len(group) >= size or not pending:
            yield group
            group = []


def _commit(extractor, sink: ShardSink, group, on_result, timer) -> None:
    failed = [decoded for _, decoded in group if isinstance(decoded, VideoResult)]
    ok = [(record, decoded) for record, decoded in group if not isinstance(decoded, VideoResult)]
    results = failed + (extract_group(extractor, *zip(*ok)) if ok else [])
    with timer("write"):
        records = sink.write(results)
        sink.on_write_complete(records)
    for record in records:
        on_result(Committed.of(record))
