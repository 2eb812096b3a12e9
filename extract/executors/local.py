"""In-process executor, the embedded default: a child process decodes ahead while the models run.

Videos are decoded in order by a child process (``DecodeProcess``: a decoder crash fails one
video, not the run), grouped ``shard_videos`` at a time, extracted with their steps sharing
model batches, and each group is committed as one shard. A crash loses at most the group in
flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from extract.config import RunConfig
from extract.datasets.base import VideoRecord
from extract.features.extractor import FeatureExtractor
from extract.store import Committed, ShardSink, VideoResult
from extract.timing import NO_TIMER, NullTimer, StageTimer
from extract.worker import DecodeProcess, extract_group


def execute_local(
    config: RunConfig,
    todo: Sequence[VideoRecord],
    extractor: FeatureExtractor,
    sink: ShardSink,
    on_result: Callable[[Committed], None],
    *,
    timer: NullTimer | StageTimer = NO_TIMER,
) -> None:
    """Process ``todo`` and commit every group through ``sink``; ``on_result`` sees each video's
    committed record. ``timer`` gets the sections ``decode`` and ``write`` (the extractor's
    own timer, the model sections)."""
    decoder = DecodeProcess(config.sampling, config.decode)

    def decoded(record: VideoRecord, handle) -> object:
        video, seconds = decoder.result(record, handle)
        timer.add("decode", seconds)
        return video

    sink.on_write_start()
    try:
        pending = deque()
        queue = iter(todo)
        for record in queue:
            pending.append((record, decoder.submit(record)))
            if len(pending) >= config.prefetch:
                break
        group: list[tuple[VideoRecord, object]] = []
        while pending:
            record, handle = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, decoder.submit(nxt)))
            group.append((record, decoded(record, handle)))
            if len(group) >= config.shard_videos or not pending:
                _commit(extractor, sink, group, on_result, timer)
                group = []
    finally:
        decoder.close()


def _commit(extractor, sink: ShardSink, group, on_result, timer) -> None:
    failed = [decoded for _, decoded in group if isinstance(decoded, VideoResult)]
    ok = [(record, decoded) for record, decoded in group if not isinstance(decoded, VideoResult)]
    results = failed + (extract_group(extractor, *zip(*ok)) if ok else [])
    with timer("write"):
        records = sink.write(results)
        sink.on_write_complete(records)
    for record in records:
        on_result(Committed.of(record))
