"""``extract viz``: draw a video's stored boxes and trajectories on its frames.

Frames are decoded again from the source path recorded in the manifest; boxes come from
the shards, so the picture shows exactly what was stored. Every panel has a title bar above
its frame (boxes never cover it), frames are resized to a readable size by any factor, each
box is labelled with its class and score, an empty panel says so, and a header names the
video and, loudly, random weights.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from extract.config import RunConfig
from extract import layout as L
from extract.store import DONE, OutputDir

RUN_CONFIG_ATTR = "config"
MIN_SIDE = 320  # smaller frames are upscaled so the longer side is this (labels stay legible)
MAX_SIDE = 640  # larger frames are downscaled to this, so a sheet of 4 columns stays viewable
TITLE_H = 22  # height of the bar above each frame that holds the panel's title
HEADER_H = 26  # height of one line of the sheet's header (video, weights)
FONT_SIZE = 13
GAP = 4  # pixels of bar colour between the panels of a sheet
BAR = (32, 32, 32)  # title and header bars: dark grey, a colour no box uses (boxes are saturated)
WARNING = (255, 90, 60)  # the random-weights line of the header


def _colour(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=FONT_SIZE)


def display_scale(width: int, height: int) -> float:
    """Factor (any real number) that brings a frame's longer side into [MIN_SIDE, MAX_SIDE]."""
    longer = max(width, height)
    return MIN_SIDE / longer if longer < MIN_SIDE else MAX_SIDE / longer if longer > MAX_SIDE else 1.0


def caption(image, xy: tuple[float, float], text: str, *, fill=(255, 255, 255), background=(0, 0, 0)) -> None:
    """Write ``text`` at ``xy`` on ``image`` on a filled tag, so it reads on any frame."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox(xy, text, font=_font())
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=background)
    draw.text(xy, text, fill=fill, font=_font())


def panel(frame: np.ndarray, boxes: list[tuple[np.ndarray, str, tuple[int, int, int]]], title: str,
          empty: str | None = None):
    """One frame with its boxes below a title bar.

    Args:
        frame: ndarray[H, W, 3] uint8, the decoded frame the boxes refer to.
        boxes: (box ndarray[4] as x1 y1 x2 y2 in ``frame``'s pixels, label text, colour) per box.
        empty: caption written on the frame when ``boxes`` is empty ("no detections").
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame).convert("RGB")
    scale = display_scale(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for box, _, colour in boxes:
        draw.rectangle([float(v) * scale for v in box], outline=colour, width=2)
    for box, text, colour in boxes:  # tags after all outlines, so no outline crosses a label
        x1, y1 = (min(max(float(v) * scale, 0), limit - 1) for v, limit in zip(box[:2], size))
        caption(image, (x1 + 3, y1 + 2), text, fill=(0, 0, 0), background=colour)
    if not boxes and empty:
        caption(image, (6, size[1] - FONT_SIZE - 8), empty)
    out = Image.new("RGB", (size[0], size[1] + TITLE_H), BAR)
    out.paste(image, (0, TITLE_H))
    ImageDraw.Draw(out).text((4, (TITLE_H - FONT_SIZE) // 2 - 1), title, fill=(255, 255, 255), font=_font())
    return out


def header(lines: list[tuple[str, tuple[int, int, int]]], width: int):
    """The sheet's header: one bar line per (text, colour)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, HEADER_H * len(lines)), BAR)
    draw = ImageDraw.Draw(image)
    for i, (text, colour) in enumerate(lines):
        draw.text((6, i * HEADER_H + (HEADER_H - FONT_SIZE) // 2 - 1), text, fill=colour, font=_font())
    return image


def header_lines(key: str, config: RunConfig, source: str) -> list[tuple[str, tuple[int, int, int]]]:
    lines = [(f"{key}  ({Path(source).name}, {config.dataset}, preset {config.preset})", (255, 255, 255))]
    if config.weights == "random":
        lines.append(("random weights: boxes, labels and scores are meaningless (smoke test)", WARNING))
    return lines


def _panels(f, key: str, video, names: list[str]) -> list:
    to_frame = np.array([*video.scale, *video.scale])  # stored boxes are in the file's pixels
    panels = []
    if L.DETECTION_BOXES.path(key) in f:
        boxes = f[L.DETECTION_BOXES.path(key)][()] / to_frame  # [T, K, 4]
        labels = f[L.DETECTION_LABELS.path(key)][()]
        scores = f[L.DETECTION_SCORES.path(key)][()]
        counts = f[L.DETECTION_COUNTS.path(key)][()]
        for t, g in enumerate(video.steps):
            drawn = [(boxes[t, i], f"{names[labels[t, i]]} {scores[t, i]:.2f}", _colour(i)) for i in range(counts[t])]
            panels.append(panel(video.grid_frames(np.array([g]))[0], drawn, f"step {t} (grid {g})",
                                empty="no detections"))
    if L.TRAJECTORY_BOXES.path(key) in f:
        tboxes = f[L.TRAJECTORY_BOXES.path(key)][()] / to_frame  # [N, F, 4], NaN where absent
        tlabels = f[L.TRAJECTORY_LABELS.path(key)][()]
        tscores = f[L.SPECS["trajectories/scores"].path(key)][()]
        empty = "no trajectories (N = 0)" if len(tboxes) == 0 else "no trajectory at this frame"
        for j, g in enumerate(video.trajectory_steps):
            drawn = [
                (tboxes[n, j], f"#{n} {names[tlabels[n]]} {tscores[n]:.2f}", _colour(n))
                for n in range(len(tboxes))
                if not np.isnan(tboxes[n, j]).any()
            ]
            panels.append(panel(video.grid_frames(np.array([g]))[0], drawn,
                                f"traj frame {j} ({g / video.sampling.fps:.0f} s)", empty=empty))
    return panels


def panel_origin(i: int, cols: int, width: int, height: int, header_height: int) -> tuple[int, int]:
    """Top-left corner of panel ``i`` on a sheet of ``cols`` columns of ``width`` x ``height`` panels."""
    return (i % cols) * (width + GAP), header_height + (i // cols) * (height + GAP)


def render(out: Path, key: str, target: Path) -> Path:
    """Draw ``key``'s detections (appearance steps) and trajectories (trajectory frames).

    ``target`` ending in ``.gif`` gives an animation of the panels, anything else a PNG
    contact sheet (up to 4 panels a row). Both carry the header. Returns ``target``.
    """
    import h5py
    from PIL import Image

    from extract.models.detector import category_names
    from extract.video import decode

    record = OutputDir(out).read_manifest().get(key)
    if record is None or record["status"] != DONE:
        raise KeyError(f"{out}: no done video with key {key!r} in the manifest")
    with h5py.File(Path(out) / "shards" / record["shard"], "r") as f:
        config = RunConfig.model_validate_json(f.attrs[RUN_CONFIG_ATTR])
        video = decode(record["path"], config.sampling, config.decode)
        panels = _panels(f, key, video, category_names())
    if not panels:
        raise ValueError(f"{out}: video {key!r} has no detections or trajectories to draw (stages objects/trajectories)")
    lines = header_lines(key, config, record["path"])
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    w, h = max(p.width for p in panels), max(p.height for p in panels)
    if target.suffix.lower() == ".gif":
        top = header(lines, w)
        frames = []
        for p in panels:
            frame = Image.new("RGB", (w, top.height + h), BAR)
            frame.paste(top, (0, 0))
            frame.paste(p, (0, top.height))
            frames.append(frame)
        frames[0].save(target, save_all=True, append_images=frames[1:], duration=500, loop=0)
        return target
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    top = header(lines, cols * (w + GAP) - GAP)
    sheet = Image.new("RGB", (top.width, top.height + rows * (h + GAP) - GAP), BAR)
    sheet.paste(top, (0, 0))
    for i, p in enumerate(panels):
        sheet.paste(p, panel_origin(i, cols, w, h, top.height))
    sheet.save(target)
    return target
