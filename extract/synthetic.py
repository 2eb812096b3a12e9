"""The one synthetic-video generator: shapes drawn on palette frames, saved as animated GIFs.

The demo dataset (``extract.datasets.demo``), the bench's TGIF-like inputs
(``write_synthetic``) and the tests' fixtures (``tests/media.py``) draw and save with these
functions; the same arguments write the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")


def draw_shape(draw, shape: str, cx: float, cy: float, r: float, fill: int | tuple[int, ...]) -> None:
    """Draw a circle, a square of about the circle's area, or an upward equilateral triangle
    (centroid at ``cx, cy``) of radius ``r`` on a ``PIL.ImageDraw.Draw``."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        half = 0.85 * r  # about the area of the circle
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + 0.866 * r, cy + 0.5 * r), (cx - 0.866 * r, cy + 0.5 * r)], fill=fill)
    else:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def shape_box(shape: str, cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    """The ``(x1, y1, x2, y2)`` extent of what :func:`draw_shape` draws, unclipped."""
    if shape == "circle":
        return cx - r, cy - r, cx + r, cy + r
    if shape == "square":
        return cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r
    return cx - 0.866 * r, cy - r, cx + 0.866 * r, cy + 0.5 * r


def save_gif(path: Path, frames: Sequence, delays_ms: Sequence[int] | int) -> Path:
    """Save PIL images as an animated GIF that loops, one delay per frame (or one for all;
    multiples of 10 ms: GIFs store centiseconds); each frame replaces the previous one."""
    frames[0].save(path, save_all=True, append_images=list(frames[1:]),
                   duration=delays_ms if isinstance(delays_ms, int) else list(delays_ms), loop=0, optimize=False,
                   disposal=1)
    return path


def write_synthetic(directory: Path, count: int, *, seed: int = 0) -> list[Path]:
    """Write ``count`` TGIF-like GIFs into ``directory``: 225-360 px sides, 2-6 s at 7-17 fps,
    2-4 shapes moving over a striped gradient. The same ``seed`` writes the same files."""
    from PIL import Image, ImageDraw

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = random.Random(f"vqa-extract-bench:{seed}:{i}")
        w, h = rng.randint(225, 360), rng.randint(225, 360)
        fps = rng.randint(7, 17)
        frames_n = max(2, round(rng.uniform(2.0, 6.0) * fps))
        base = [rng.randint(0, 255) for _ in range(3)]
        palette = [(base[c] + step * k) % 256 for k in range(32) for c, step in enumerate((4, 2, -3))]
        shapes = []
        for j in range(rng.randint(2, 4)):
            palette += [rng.randint(0, 255) for _ in range(3)]
            r = rng.randint(15, 50)
            shapes.append((rng.choice(SHAPES), r, rng.uniform(r, w - r), rng.uniform(r, h - r),
                           rng.uniform(-80, 80), rng.uniform(-80, 80), 32 + j))
        palette += [0] * (768 - len(palette))
        yy, xx = np.mgrid[0:h, 0:w]
        background = ((xx * 24 // w + yy * 8 // h) % 32).astype(np.uint8)
        images = []
        for f in range(frames_n):
            t = f / fps
            im = Image.fromarray(background, mode="P")
            im.putpalette(palette)
            draw = ImageDraw.Draw(im)
            for shape, r, x0, y0, vx, vy, color in shapes:
                draw_shape(draw, shape, (x0 + vx * t) % w, (y0 + vy * t) % h, r, color)
            images.append(im)
        paths.append(save_gif(directory / f"synthetic_{i:04d}.gif", images, round(100 / fps) * 10))
    return paths
