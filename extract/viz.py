"""``extract viz``: draw a video's stored boxes and trajectories on its frames.

Frames are decoded again from the source path recorded in the manifest; boxes come from
the shards, so the picture shows exactly what was stored.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from extract.config import RunConfig
from extract import layout
from extract.store import DONE, OutputDir

RUN_CONFIG_ATTR = "config"


def _colour(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _panel(frame: np.ndarray, boxes: list[tuple[np.ndarray, str, tuple[int, int, int]]], title: str):
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame).convert("RGB")
    scale = max(1, 256 // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    for box, text, colour in boxes:
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        draw.text((x1 + 2, y1 + 1), text, fill=colour)
    draw.text((3, 3), title, fill=(255, 255, 255))
    return image


def render(out: Path, key: str, target: Path) -> Path:
    """Draw ``key``'s detections (appearance steps) and trajectories (trajectory frames).

    ``target`` ending in ``.gif`` gives an animation of the panels, anything else a PNG
    contact sheet. Returns ``target``.
    """
    import h5py
    from PIL import Image

    from extract.models.detector import category_names
    from extract.video import decode

    record = OutputDir(out).read_manifest().get(key)
    if record is None or record["status"] != DONE:
        raise KeyError(f"{out}: no done video with key {key!r} in the manifest")
    names = category_names()
    with h5py.File(Path(out) / "shards" / record["shard"], "r") as f:
        config = RunConfig.model_validate_json(f.attrs[RUN_CONFIG_ATTR])
        video = decode(record["path"], config.sampling, config.decode)
        to_frame = np.array([*video.scale, *video.scale])  # stored boxes are in the file's pixels
        panels = []
        if layout.DETECTION_BOXES.path(key) in f:
            boxes = f[layout.DETECTION_BOXES.path(key)][()] / to_frame
            labels = f[layout.DETECTION_LABELS.path(key)][()]
            counts = f[layout.DETECTION_COUNTS.path(key)][()]
            for t, g in enumerate(video.steps):
                drawn = [(boxes[t, i], names[labels[t, i]], _colour(i)) for i in range(counts[t])]
                panels.append(_panel(video.grid_frames(np.array([g]))[0], drawn, f"step {t} (grid {g})"))
        if layout.TRAJECTORY_BOXES.path(key) in f:
            tboxes = f[layout.TRAJECTORY_BOXES.path(key)][()] / to_frame  # [N, F, 4], NaN where absent
            tlabels = f[layout.TRAJECTORY_LABELS.path(key)][()]
            for j, g in enumerate(video.trajectory_steps):
                drawn = [
                    (tboxes[n, j], f"#{n} {names[tlabels[n]]}", _colour(n))
                    for n in range(len(tboxes))
                    if not np.isnan(tboxes[n, j]).any()
                ]
                panels.append(_panel(video.grid_frames(np.array([g]))[0], drawn, f"traj frame {j} ({g / video.sampling.fps:.0f} s)"))
    if not panels:
        raise ValueError(f"{out}: video {key!r} has no detections or trajectories to draw (stages objects/trajectories)")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".gif":
        panels[0].save(target, save_all=True, append_images=panels[1:], duration=500, loop=0)
        return target
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    w, h = max(p.width for p in panels), max(p.height for p in panels)
    sheet = Image.new("RGB", (cols * w, rows * h))
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % cols) * w, (i // cols) * h))
    sheet.save(target)
    return target
