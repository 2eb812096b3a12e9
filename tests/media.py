"""Video fixtures written by the tests themselves: GIFs with Pillow, mp4 with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

FPS_RATES = {25: Fraction(25), 29.97: Fraction(30000, 1001), 30: Fraction(30)}


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """A frame that differs from every other index: a moving square over a gradient."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(w)[None, :] * 255 // max(w - 1, 1)).astype(np.uint8)
    img[..., 1] = (i * 37) % 256
    y, x = (i * 3) % max(h - 8, 1), (i * 5) % max(w - 8, 1)
    img[y : y + 8, x : x + 8, 2] = 255
    return img


def write_gif(path: Path, delays_ms: list[int], size: tuple[int, int] = (72, 96)) -> Path:
    """A GIF with one frame per delay (multiples of 10 ms: GIFs store centiseconds)."""
    from PIL import Image

    h, w = size
    frames = [Image.fromarray(pattern(i, h, w)) for i in range(len(delays_ms))]
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=delays_ms, loop=0, optimize=False, disposal=1
    )
    return path


def write_mp4(path: Path, fps: float, num_frames: int, size: tuple[int, int] = (64, 96)) -> Path:
    """A lossless H.264 mp4 at exactly ``fps`` (25, 29.97 or 30)."""
    import av

    h, w = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS_RATES[fps])
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pyav_frames(path: Path) -> tuple[list[Fraction], Fraction, list[np.ndarray]]:
    """The oracle: every frame decoded by PyAV, exact pts (Fractions) and duration."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts, images, last_duration = [], [], Fraction(0)
        for frame in container.decode(stream):
            pts.append(Fraction(frame.pts) * stream.time_base)
            images.append(frame.to_ndarray(format="rgb24"))
            last_duration = Fraction(frame.duration or 0) * stream.time_base
    return pts, pts[-1] + last_duration, images
