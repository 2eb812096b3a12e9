"""The work on one group of videos, shared by the executors: decode, extract, package results.

Failures are contained here: a video that cannot be decoded, or whose features come out
non-finite, becomes a failed ``VideoResult`` with its reason; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from extract.datasets.base import VideoRecord
from extract.sampling import SamplingConfig
from extract.store import VideoResult, nan_allowed
from extract.video import DecodedVideo, DecodeError, decode

if TYPE_CHECKING:  # decode and write workers never load the models
    from extract.features import FeatureExtractor


def decode_record(record: VideoRecord, sampling: SamplingConfig) -> DecodedVideo | VideoResult:
    """The decoded grid of ``record``, or a failed result naming the reason."""
    try:
        return decode(record.path, sampling)
    except DecodeError as e:
        return VideoResult(record.key, str(record.path), reason=e.reason)
    except Exception as e:  # noqa: BLE001 - a decoder crash must fail this video only
        return VideoResult(record.key, str(record.path), reason=f"decoder error: {type(e).__name__}: {e}")


def video_info(video: DecodedVideo, stages: Sequence[str]) -> dict:
    return {
        "steps": len(video.steps),
        "grid": video.num_grid,
        "duration": round(video.duration, 6),
        "width": video.width,
        "height": video.height,
        "stages": list(stages),
    }


def extract_group(
    extractor: FeatureExtractor, records: Sequence[VideoRecord], videos: Sequence[DecodedVideo]
) -> list[VideoResult]:
    """Features of several decoded videos, batched together.

    If the batch fails (out of memory, a model error on one odd input), each video is retried
    alone so that only the culprit fails, with the error as its reason.
    """
    try:
        outputs = extractor(list(videos))
    except Exception as e:  # noqa: BLE001 - isolate the failing video below
        if len(videos) == 1:
            return [VideoResult(records[0].key, str(records[0].path), reason=f"model error: {type(e).__name__}: {e}")]
        return [r for rec, vid in zip(records, videos) for r in extract_group(extractor, [rec], [vid])]
    return [_result(extractor, rec, vid, out) for rec, vid, out in zip(records, videos, outputs)]


def _result(extractor: FeatureExtractor, record: VideoRecord, video: DecodedVideo, features: dict) -> VideoResult:
    bad = [
        name
        for name, array in features.items()
        if array.dtype.kind == "f" and not nan_allowed(name) and not np.isfinite(array).all()
    ]
    if bad:
        return VideoResult(record.key, str(record.path), reason=f"non-finite values in {', '.join(sorted(bad))}")
    return VideoResult(record.key, str(record.path), features=features, info=video_info(video, extractor.stages))
