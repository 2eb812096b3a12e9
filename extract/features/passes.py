"""The model passes, as functions of tensors: appearance (ResNet), motion (I3D), RoI pooling.

Each takes its model and its inputs and returns float32 tensors; the schedule (which frames,
in which batches, on which thread) is the caller's. The detection pass is behind
``extract.features.detection.DetectionSource``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from extract.geometry import roi_mean_features
from extract.models.appearance import AppearanceNet
from extract.models.motion import MotionNet


def unit_float(pixels: Tensor) -> Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return pixels.movedim(-1, -3).float().div_(255.0)


def square(images: Tensor, size: int) -> Tensor:
    """Resize [B, 3, H, W] (any H, W) to [B, 3, size, size], antialiased."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def to_device(indices: np.ndarray, device: torch.device) -> Tensor:
    """Index array (ndarray[...] int64) on ``device``: on CUDA from pinned memory, asynchronous,
    so that indexing the device's frames never waits for the queued model work."""
    index = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
    if device.type == "cuda":
        return index.pin_memory().to(device, non_blocking=True)
    return index


def appearance_pass(
    model: AppearanceNet,
    frames: Sequence[Tensor],
    *,
    size: int,
    memory_format: torch.memory_format,
    amp: bool,
) -> tuple[Tensor, Tensor]:
    """ResNet on a batch of frames.

    Args:
        frames (Sequence[Tensor[B_i, H_i, W_i, 3] uint8]): runs of frames (one run per video),
            each resized to ``size`` x ``size``. The batch is never padded: a sample's result
            depends on the batch size, which the caller's schedule fixes per video.
    Returns:
        pooled Tensor[B, 2048] float32 (avgpool), c5 Tensor[B, 2048, size/32, size/32] float32,
        B = sum B_i.
    """
    images = torch.cat([square(unit_float(run), size) for run in frames]).contiguous(memory_format=memory_format)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        pooled, c5 = model(images)  # [B, 2048], [B, 2048, h, w]
    return pooled.float(), c5.float()


def motion_clips(pixels: Tensor, ids: np.ndarray, size: int) -> Tensor:
    """I3D inputs of one video's windows: each distinct frame is resized once.

    Args:
        pixels (Tensor[U, H, W, 3] uint8): the video's decoded frames.
        ids (ndarray[n, L] int64): per clip, its window's indices into ``pixels``.
    Returns:
        Tensor[n, L, 3, size, size] float in [0, 1].
    """
    unique, inverse = np.unique(ids.ravel(), return_inverse=True)
    frames = square(unit_float(pixels[to_device(unique, pixels.device)]), size)  # [U', 3, S, S]
    return frames[to_device(inverse.reshape(ids.shape), pixels.device)]


def motion_pass(
    model: MotionNet, clips: Sequence[Tensor], *, memory_format: torch.memory_format, amp: bool
) -> Tensor:
    """I3D on a batch of clips (``motion_clips`` of one or more videos).

    Args:
        clips (Sequence[Tensor[n_i, L, 3, S, S]]): the clips of each video, in order (never padded).
    Returns:
        Tensor[B, 2048, h, w] float32: the res5 maps averaged over time, B = sum n_i.
    """
    batch = torch.cat(list(clips)).movedim(1, 2).contiguous(memory_format=memory_format)  # [B, 3, L, S, S]
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=amp):
        fmap = model(batch)  # [B, 2048, L', h, w]
    return fmap.float().mean(dim=2)


def roi_pool(
    fmap: Tensor, boxes: Sequence[Tensor], *, size: int, output_size: int, sampling_ratio: int, fast: bool
) -> list[Tensor]:
    """RoI features of boxes on a batch of feature maps.

    Args:
        fmap (Tensor[B, C, h, w]): maps of ``size`` x ``size`` inputs.
        boxes (Sequence[Tensor[K_b, 4]]): per row of ``fmap``, x1, y1, x2, y2 in input pixels.
        output_size, sampling_ratio: the RoIAlign grid, averaged to one vector per box.
        fast: the weight-map form (``extract.geometry.roi_mean_features``).
    Returns:
        one Tensor[K_b, C] per row.
    """
    if not any(len(b) for b in boxes):
        return [fmap.new_zeros((0, fmap.shape[1])) for _ in boxes]
    feats = roi_mean_features(
        fmap, list(boxes), image_size=(size, size), output_size=output_size, sampling_ratio=sampling_ratio, fast=fast
    )  # [sum K, C]
    return list(torch.split(feats, [len(b) for b in boxes]))
