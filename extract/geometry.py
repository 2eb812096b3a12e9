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
    # Scalar products, not ``boxes * new_tensor([...])``: on CUDA that copy from the host would
    # wait for the device at every frame.
    return torch.stack([boxes[:, 0] * sx, boxes[:, 1] * sy, boxes[:, 2] * sx, boxes[:, 3] * sy], dim=1)


def _axis_weights(coords: Tensor, size: int) -> Tensor:
    """Summed linear-interpolation weights of sample coordinates along one axis.

    Args:
        coords (Tensor[K, n] float32): sample coordinates in map pixels.
    Returns:
        Tensor[K, size] float64: for each box, the weight of each map row (or column), summed
        over the n samples. torchvision's RoIAlign rules and float32 arithmetic: a sample more
        than one pixel outside the map weighs 0, the others clamp to the edge pixels.
    """
    valid = (coords >= -1.0) & (coords <= size)
    c = coords.clamp(min=0.0)
    low = c.floor()
    at_end = low >= size - 1
    low = low.clamp(max=size - 1)
    frac = torch.where(at_end, torch.zeros_like(c), c - low)  # float32, as torchvision's `ly`
    keep = 1.0 - frac
    zero = torch.zeros_like(c)
    frac, keep = torch.where(valid, frac, zero).double(), torch.where(valid, keep, zero).double()
    low = low.long()
    high = (low + 1).clamp(max=size - 1)
    one_hot = torch.nn.functional.one_hot
    weights = one_hot(low, size).double() * keep[..., None] + one_hot(high, size).double() * frac[..., None]
    return weights.sum(dim=1)  # [K, size]


def roi_mean_weights(boxes: Tensor, height: int, width: int, *, output_size: int, sampling_ratio: int) -> Tensor:
    """RoIAlign (``aligned=True``) followed by the mean over its output grid, as weights on the map.

    RoIAlign averages bilinear samples on a regular grid of ``output_size * sampling_ratio``
    points per side; the mean over the output bins weighs all of them equally. Bilinear
    weights factor into a row part and a column part, so one ``height x width`` weight map
    per box gives the pooled feature as ``weights @ map``. Sample positions and their weights
    follow torchvision's CPU kernel in float32; only the sums are taken in float64.

    Args:
        boxes (Tensor[K, 4]): xyxy in map pixels (already scaled to the map).
    Returns:
        Tensor[K, height * width] float64.
    """
    _check_boxes(boxes)
    if sampling_ratio < 1:
        raise ValueError(f"sampling_ratio must be >= 1 here, got {sampling_ratio}")
    b = boxes.float()
    start = b[:, :2] - 0.5  # [K, 2] (x, y)
    bins = ((b[:, 2:] - 0.5) - start) / output_size  # [K, 2]
    grid = torch.arange(output_size, dtype=torch.float32, device=b.device).repeat_interleave(sampling_ratio)
    sub = (torch.arange(sampling_ratio, dtype=torch.float32, device=b.device) + 0.5).repeat(output_size)
    # torchvision: start + p * bin + (i + 0.5) * bin / sampling_ratio, in this order.
    xs = (start[:, :1] + grid * bins[:, :1]) + (sub * bins[:, :1]) / sampling_ratio  # [K, n]
    ys = (start[:, 1:] + grid * bins[:, 1:]) + (sub * bins[:, 1:]) / sampling_ratio
    rows, cols = _axis_weights(ys, height), _axis_weights(xs, width)
    n = output_size * sampling_ratio
    return (rows[:, :, None] * cols[:, None, :]).reshape(len(b), height * width) / (n * n)


def roi_mean_features(
    feature_map: Tensor,
    boxes: list[Tensor],
    *,
    image_size: tuple[int, int],
    output_size: int,
    sampling_ratio: int,
    fast: bool = False,
) -> Tensor:
    """RoIAlign each box on its image's map and average the pooled grid to one vector.

    Args:
        feature_map (Tensor[B, C, h, w]): maps of B images of size ``image_size = (W, H)``.
        boxes (list[Tensor[K_b, 4]]): per image, xyxy in pixels of the ``image_size`` input.
        output_size: RoIAlign grid (7 in MASN's "hw7" features).
        fast: compute ``roi_mean_weights @ map`` (float64 sums) instead of
            ``torchvision.ops.roi_align(..., aligned=True).mean((2, 3))``: tens of times faster
            on a CPU, and equal up to roi_align's own float32 rounding (a few ulps, ~3e-7
            relative). Needs ``sampling_ratio`` >= 1.
    Returns:
        Tensor[sum K_b, C] in the order of ``boxes``, in the map's dtype.
    """
    if feature_map.ndim != 4 or feature_map.shape[0] != len(boxes):
        raise ValueError(
            f"feature_map must be Tensor[B, C, h, w] with B = len(boxes) = {len(boxes)}, got {tuple(feature_map.shape)}"
        )
    for b in boxes:
        _check_boxes(b)
    c, h, w = feature_map.shape[1:]
    # Separate x and y scales: the map may not be an exact 1/32 of a non-square input.
    scaled = [scale_boxes(b.to(feature_map.dtype), image_size, (w, h)) for b in boxes]
    if not fast:
        from torchvision.ops import roi_align

        pooled = roi_align(feature_map, scaled, output_size=output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)
        return pooled.mean(dim=(2, 3))  # [sum K_b, C]
    out = [
        roi_mean_weights(b, h, w, output_size=output_size, sampling_ratio=sampling_ratio) @ fmap.reshape(c, h * w).double().T
        for fmap, b in zip(feature_map, scaled)
        if len(b)
    ]
    return torch.cat(out).to(feature_map.dtype) if out else feature_map.new_zeros((0, c))  # [sum K_b, C]


def pad_rows(x: Tensor, rows: int) -> Tensor:
    """Zero-pad (or keep) the first dimension of ``x`` to ``rows``: Tensor[K, ...] -> Tensor[rows, ...]."""
    if x.shape[0] > rows:
        raise ValueError(f"cannot pad {x.shape[0]} rows down to {rows}")
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))], dim=0)


def pad_to_aspect(image: Tensor, max_size: int) -> Tensor:
    """``image`` zero-padded (right or bottom) so that a resize capping its longer side at
    ``max_size`` keeps at least 2 px on its shorter side (torchvision's detector resize rounds
    down, and a 2x3000 frame would become 0 px wide). Boxes on the result are boxes on
    ``image`` where they lie inside it: clip them to its size. Other images are returned as is.

    Args:
        image (Tensor[C, H, W]).
    Returns:
        Tensor[C, H', W'] with H' >= H, W' >= W.
    """
    height, width = image.shape[-2:]
    need = -(-2 * max(height, width) // max_size)  # ceil: the shorter side that resizes to >= 2 px
    if min(height, width) >= need:
        return image
    pad_w, pad_h = (need - width, 0) if width < height else (0, need - height)
    return torch.nn.functional.pad(image, (0, pad_w, 0, pad_h))
