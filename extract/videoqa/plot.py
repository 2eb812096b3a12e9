"""Training curves of a MASN run as a PNG, drawn with Pillow (no plotting library needed).

Two panels side by side: the training and validation loss per epoch, and the validation selection
metric (accuracy % or Count MSE) per epoch with the selected epoch marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["plot_history"]

_PANEL = (480, 320)  # width, height of one panel in pixels
_MARGIN = (56, 28, 16, 40)  # left, top, right, bottom
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _panel(title: str, epochs: Sequence[int], series: Mapping[str, Sequence[float | None]],
           marked: int | None) -> Image.Image:
    image = Image.new("RGB", _PANEL, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = _MARGIN
    x0, y0, x1, y1 = left, top, _PANEL[0] - right, _PANEL[1] - bottom
    draw.text((left, 6), title, fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline="black")

    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    if not epochs or not values:
        return image
    v_low, v_high = min(values), max(values)
    if v_high == v_low:
        v_low, v_high = v_low - 0.5, v_high + 0.5
    e_low, e_high = min(epochs), max(max(epochs), min(epochs) + 1)

    def xy(epoch: float, value: float) -> tuple[float, float]:
        return (x0 + (epoch - e_low) / (e_high - e_low) * (x1 - x0),
                y1 - (value - v_low) / (v_high - v_low) * (y1 - y0))

    for value in _ticks(v_low, v_high):
        _, y = xy(e_low, value)
        draw.line((x0 - 4, y, x0, y), fill="black")
        draw.text((4, y - 6), f"{value:.3g}", fill="black", font=font)
    for epoch in sorted(set(int(e) for e in _ticks(e_low, e_high))):
        x, _ = xy(epoch, v_low)
        draw.line((x, y1, x, y1 + 4), fill="black")
        draw.text((x - 4, y1 + 6), str(epoch), fill="black", font=font)
    draw.text(((x0 + x1) // 2 - 16, y1 + 22), "epoch", fill="black", font=font)

    if marked is not None:
        x, _ = xy(marked, v_low)
        draw.line((x, y0, x, y1), fill="#999999")
    for i, (name, ys) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [xy(e, v) for e, v in zip(epochs, ys) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((x1 - 110, y0 + 6 + 14 * i), name, fill=colour, font=font)
    return image


def plot_history(history: Sequence[Mapping], path: Path, *, metric: str, best_epoch: int | None) -> Path:
    """Draw the per-epoch records of a run (``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``) to ``path``."""
    epochs = [int(h["epoch"]) for h in history]
    losses = _panel("loss", epochs, {"train": [h["train_loss"] for h in history],
                                     "validation": [h.get("val_loss") for h in history]}, best_epoch)
    scores = _panel(f"validation {metric}", epochs, {metric: [h.get(f"val_{metric}") for h in history]}, best_epoch)
    image = Image.new("RGB", (2 * _PANEL[0], _PANEL[1]), "white")
    image.paste(losses, (0, 0))
    image.paste(scores, (_PANEL[0], 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
