"""The CUDA path against the CPU, bf16 against float32, batched detection against one frame a
pass; skipped without a GPU (``scripts/gpu_check.sh`` runs them on one).

Tolerances, relative to the largest magnitude of the reference (random-weight features reach ~100):
- CPU vs CUDA float32 (TF32 off, cudnn deterministic): 1e-4; other kernels round differently.
- float32 vs bf16 autocast: 5e-2 of the scale, and cosine similarity >= 0.99 per vector
  (bf16 keeps 8 mantissa bits; ~50 layers accumulate its rounding).
- Batched vs one-frame detector passes: 98% of the one-frame boxes found in the batched output
  at IoU >= 0.9 (the kernels differ by batch size, so near-tied random-weight scores may swap).
Whatever the tolerance, a video's outputs on CUDA do not depend on the videos beside it (bit for bit).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_models
from extract.features import build_extractor
from extract.video import decode
from media import write_gif, write_mp4

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

STAGES = ["appearance", "objects", "motion"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("cuda")
    return [
        decode(write_gif(d / "a.gif", [100] * 40, size=(72, 96))),
        decode(write_mp4(d / "b.mp4", 30, num_frames=100, size=(80, 64))),
        decode(write_gif(d / "c.gif", [100] * 7, size=(64, 64))),
    ]


def _run(videos, **runtime) -> list[dict]:
    from extract.features.runtime import configure_threads

    config = tiny_models(runtime={"batch_size": 4, **runtime})
    configure_threads(config)
    extractor = build_extractor(config, STAGES)
    return [f.arrays() for f in extractor(videos)]


def _close(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    scale = max(float(np.abs(want).max()), 1e-6)
    assert float(np.abs(got - want).max()) <= rel * scale, (float(np.abs(got - want).max()), scale)


def test_cuda_features_match_the_cpu(videos):
    cpu, cuda = _run(videos, device="cpu"), _run(videos, device="cuda")
    for c, g in zip(cpu, cuda):
        for name in ("appearance", "motion"):
            _close(g[name], c[name], 1e-4)


def test_bf16_features_are_close_to_float32(videos):
    fp32, bf16 = _run(videos, device="cuda"), _run(videos, device="cuda", amp=True)
    for a, b in zip(fp32, bf16):
        for name in ("appearance", "motion"):
            _close(b[name], a[name], 5e-2)
            cos = (a[name] * b[name]).sum(1) / (np.linalg.norm(a[name], axis=1) * np.linalg.norm(b[name], axis=1) + 1e-12)
            assert cos.min() >= 0.99, (name, cos.min())


def test_cuda_outputs_do_not_depend_on_the_batch_composition(videos):
    alone = [_run([v], device="cuda")[0] for v in videos]
    together = _run(videos[::-1], device="cuda")[::-1]
    for a, t in zip(alone, together):
        for name in a:
            assert a[name].tobytes() == t[name].tobytes(), name


def test_batched_detection_finds_the_one_frame_boxes(videos):
    from torchvision.ops import box_iou

    from extract.models.detector import Detector

    config = tiny_models(runtime={"device": "cuda"})
    detector = build_extractor(config, ["objects"]).detections.detector
    frames = [torch.from_numpy(f).cuda().permute(2, 0, 1).float() / 255 for v in videos for f in v.frames[:16]]
    one = Detector(detector.model, agnostic_nms_iou=detector.agnostic_nms_iou, batch_size=1)
    batched = Detector(detector.model, agnostic_nms_iou=detector.agnostic_nms_iou, batch_size=8)
    with torch.inference_mode():
        single, many = one(frames, top_k=10), batched(frames, top_k=10)
    found = total = 0
    for s, m in zip(single, many):
        total += len(s.boxes)
        if len(s.boxes) and len(m.boxes):
            found += int((box_iou(s.boxes, m.boxes).max(dim=1).values >= 0.9).sum())
    assert found >= 0.98 * total, (found, total)
