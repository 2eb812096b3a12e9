"""The work on one group of videos, shared by the executors: decode, extract, package results.

Failures are contained here: a video that cannot be decoded, or whose features come out
non-finite, becomes a failed ``VideoResult`` with its reason; the others go on.

A video of one part (``DecodeConfig.part_steps`` steps or fewer: every TGIF GIF) is decoded
whole, ahead of the models (in child processes, ``extract.decode_pool``, for the local
executor), and shares model batches with the others of its group. A longer one is only opened
ahead; its parts are decoded and extracted one at a time, then joined and its trajectories
linked, so its frames are never all in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from extract.datasets.base import VideoRecord
from extract.layout import nan_allowed
from extract.sampling import SamplingConfig
from extract.store import VideoResult
from extract.video import DecodeConfig, DecodedVideo, DecodeError, VideoFile, open_video

if TYPE_CHECKING:  # decode and write workers never load the models
    from extract.decode_pool import ChildStream
    from extract.features.extractor import FeatureExtractor
    from extract.features.result import VideoFeatures

# A whole decoded video, or an opened one to stream in parts (a ``ChildStream``, opened in a
# decoding child, stands in for a ``VideoFile``: anything not a ``DecodedVideo`` is streamed)
Decoded = DecodedVideo | VideoFile


def _decode_failure(record: VideoRecord, e: Exception) -> VideoResult:
    """The failed result of a video whose decoding raised ``e``."""
    reason = e.reason if isinstance(e, DecodeError) else f"decoder error: {type(e).__name__}: {e}"
    return VideoResult(record.key, str(record.path), reason=reason)


def open_record(record: VideoRecord, sampling: SamplingConfig, config: DecodeConfig) -> VideoFile | VideoResult:
    """``record`` opened (timestamps, grid, size), or a failed result naming the reason."""
    try:
        return open_video(record.path, sampling, config)
    except Exception as e:  # noqa: BLE001 - a decoder error must fail this video only
        return _decode_failure(record, e)


def decode_record(record: VideoRecord, sampling: SamplingConfig, config: DecodeConfig) -> Decoded | VideoResult:
    """``record`` decoded whole when it is one part, else opened to stream; or a failed result."""
    video = open_record(record, sampling, config)
    if isinstance(video, VideoResult) or video.num_parts > 1:
        return video
    try:
        return video.read()
    except Exception as e:  # noqa: BLE001 - as above
        return _decode_failure(record, e)
    finally:
        video.close()


def video_info(video: Decoded, stages: Sequence[str]) -> dict:
    info = {
        "steps": len(video.steps),
        "grid": video.num_grid,
        "duration": round(video.duration, 6),
        "width": video.source_size[0],
        "height": video.source_size[1],
        "stages": list(stages),
    }
    if not isinstance(video, DecodedVideo):
        info["parts"] = video.num_parts
    return info


def extract_group(
    extractor: FeatureExtractor, records: Sequence[VideoRecord], videos: Sequence[Decoded]
) -> list[VideoResult]:
    """Features of several videos: the decoded ones batched together, the opened ones streamed.

    If a batch fails (out of memory, a model error on one odd input), each video is retried
    alone so that only the culprit fails, with the error as its reason.
    """
    results: list[VideoResult | None] = [None] * len(records)
    whole = [i for i, video in enumerate(videos) if isinstance(video, DecodedVideo)]
    if whole:
        batch = _extract_batch(extractor, [records[i] for i in whole], [videos[i] for i in whole])
        for i, result in zip(whole, batch):
            results[i] = result
    for i, video in enumerate(videos):
        if not isinstance(video, DecodedVideo):
            results[i] = _extract_streamed(extractor, records[i], video)
    return results


def _extract_batch(extractor: FeatureExtractor, records, videos) -> list[VideoResult]:
    try:
        outputs = extractor(list(videos))
    except Exception as e:  # noqa: BLE001 - isolate the failing video below
        if len(videos) == 1:
            return [_model_error(records[0], e)]
        return [r for rec, vid in zip(records, videos) for r in _extract_batch(extractor, [rec], [vid])]
    return [_finished(extractor, rec, vid, out) for rec, vid, out in zip(records, videos, outputs)]


def _extract_streamed(extractor: FeatureExtractor, record: VideoRecord, video: VideoFile | ChildStream) -> VideoResult:
    from extract.features.result import merge_parts

    try:
        parts = []
        for part in video.parts():
            try:
                (features,) = extractor([part])
            except Exception as e:  # noqa: BLE001 - this video fails, the group goes on
                return _model_error(record, e)
            parts.append(features)
    except Exception as e:  # noqa: BLE001 - a part that fails to decode fails this video only
        return _decode_failure(record, e)
    finally:
        video.close()
    return _finished(extractor, record, video, merge_parts(parts))


def _model_error(record: VideoRecord, e: Exception) -> VideoResult:
    from extract.detections import DetectionError

    if isinstance(e, DetectionError):  # the --detections file of this video; its message names it
        return VideoResult(record.key, str(record.path), reason=f"detections: {e}")
    return VideoResult(record.key, str(record.path), reason=f"model error: {type(e).__name__}: {e}")


def _finished(extractor: FeatureExtractor, record: VideoRecord, video: Decoded, features: VideoFeatures) -> VideoResult:
    """The result of a whole video (decoded whole or from its parts): its trajectories linked
    (the one place they are), then its arrays checked for non-finite values."""
    try:
        arrays = extractor.finish(features, video).arrays()
    except Exception as e:  # noqa: BLE001 - a linking error fails this video only
        return _model_error(record, e)
    bad = [
        name
        for name, array in arrays.items()
        if array.dtype.kind == "f" and not nan_allowed(name) and not np.isfinite(array).all()
    ]
    if bad:
        return VideoResult(record.key, str(record.path), reason=f"non-finite values in {', '.join(sorted(bad))}")
    return VideoResult(record.key, str(record.path), features=arrays, info=video_info(video, extractor.stages))
