"""Box geometry and RoI pooling: pure functions on xyxy pixel boxes.

One box format inside the package: ``(x1, y1, x2, y2)`` in pixels of the decoded frame.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_boxes(boxes: Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be Tensor[K, 4] (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")


def spatial_features(boxes: Tensor, width: int, height: int) -> Tensor:
    """MASN's 6-d location vector of each box (DESIGN.md section 1).

    Args:
        boxes (Tensor[K, 4]): x1, y1, x2, y2 in pixels of a ``width`` x ``height`` frame.
    Returns:
        Tensor[K, 6]: ``[x1/W, y1/H, x2/W, y2/H, (x2-x1)/W, (y2-y1)/H]``.
    """
    _check_boxes(boxes)
    scale = boxes.new_tensor([width, height, width, height])
    norm = boxes / scale
    return torch.cat([norm, norm[:, 2:] - norm[:, :2]], dim=1)


def scale_boxes(boxes: Tensor, src_size: tuple[int, int], dst_size: tuple[int, int]) -> Tensor:
    """Map boxes from a ``src_size = (W, H)`` frame onto a ``dst_size = (W', H')`` resize of it.

    Args:
        boxes (Tensor[K, 4]): xyxy in ``src_size`` pixels.
    Returns:
        Tensor[K, 4]: xyxy in ``dst_size`` pixels.
    """
    _check_boxes(boxes)
    sx, sy = dst_size[0] / src_size[0], dst_size[1] / src_size[1]
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def roi_mean_features(
    feature_map: Tensor,
    boxes: list[Tensor],
    *,
    image_size: tuple[int, int],
    output_size: int,
    sampling_ratio: int,
) -> Tensor:
    """RoIAlign each box on its image's map and average the pooled grid to one vector.

    Args:
        feature_map (Tensor[B, C, h, w]): maps of B images of size ``image_size = (W, H)``.
        boxes (list[Tensor[K_b, 4]]): per image, xyxy in pixels of the ``image_size`` input.
        output_size: RoIAlign grid (7 in MASN's "hw7" features).
    Returns:
        Tensor[sum K_b, C] in the order of ``boxes``.
    """
    from torchvision.ops import roi_align

    if feature_map.ndim != 4 or feature_map.shape[0] != len(boxes):
        raise ValueError(
            f"feature_map must be Tensor[B, C, h, w] with B = len(boxes) = {len(boxes)}, got {tuple(feature_map.shape)}"
        )
    for b in boxes:
        _check_boxes(b)
    h, w = feature_map.shape[-2:]
    # Separate x and y scales: the map may not be an exact 1/32 of a non-square input.
    scaled = [scale_boxes(b.to(feature_map.dtype), image_size, (w, h)) for b in boxes]
    pooled = roi_align(feature_map, scaled, output_size=output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)
    return pooled.mean(dim=(2, 3))  # [sum K_b, C]


def pad_rows(x: Tensor, rows: int) -> Tensor:
    """Zero-pad (or keep) the first dimension of ``x`` to ``rows``: Tensor[K, ...] -> Tensor[rows, ...]."""
    if x.shape[0] > rows:
        raise ValueError(f"cannot pad {x.shape[0]} rows down to {rows}")
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))], dim=0)
