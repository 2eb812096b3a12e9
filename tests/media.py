"""Video fixtures written by the tests themselves: GIFs with Pillow, mp4 with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from extract.synthetic import save_gif

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
    return save_gif(path, [Image.fromarray(pattern(i, h, w)) for i in range(len(delays_ms))], delays_ms)


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


def write_long_mp4(path: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (180, 320)) -> Path:
    """A lossy H.264 mp4 of ``seconds`` at ``fps``, encoded fast: for length and size, not exactness."""
    import av

    h, w = size
    base = pattern(0, h, w)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for i in range(round(seconds * fps)):
            img = base.copy()
            y, x = (i * 3) % max(h - 16, 1), (i * 5) % max(w - 16, 1)
            img[y : y + 16, x : x + 16] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_with_pts(path: Path, pts: list[int | None], fmt: str, size: tuple[int, int] = (48, 64)) -> Path:
    """Intra-only (MJPEG) frames ``pattern(0..)`` in decode order, muxed with the given packet
    pts in 1/25 s (None: no timestamp), dts 0, 1, 2, ...: non-monotonic or missing timestamps."""
    import av

    h, w = size
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuvj420p"
        packets = []
        for i in range(len(pts)):
            packets += stream.encode(av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24"))
        packets += stream.encode()
        for i, (packet, t) in enumerate(zip(packets, pts, strict=True)):
            packet.pts, packet.dts = t, (i if t is not None else None)
            container.mux(packet)
    return path


def write_raw_h264(path: Path, num_frames: int, size: tuple[int, int] = (48, 64)) -> Path:
    """An H.264 elementary stream without a container: no timestamps, no frame count."""
    import av

    h, w = size
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def segfault_on_poison(record, *args):
    """``extract.decode_pool.decode_in_child``, but a file named ``poison.*`` kills the decoding
    process with SIGSEGV, as a crash in native decoder code would."""
    import os
    import signal

    from extract.decode_pool import decode_in_child

    if record.path.stem == "poison":
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_in_child(record, *args)


def segfault_on_poison_part(record, sampling, config, index, *args):
    """``extract.decode_pool.decode_part_in_child``, but part 1 of a file named ``poison.*``
    kills the decoding process with SIGSEGV."""
    import os
    import signal

    from extract.decode_pool import decode_part_in_child

    if record.path.stem == "poison" and index == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_part_in_child(record, sampling, config, index, *args)


def gif_frame_data(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each frame's first LZW data sub-block in the GIF ``data``."""
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 << ((flags & 7) + 1)
    frames = []
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # 0x2C image descriptor: 9 bytes, a local color table, the LZW code size
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            frames.append((pos + 1, data[pos]))
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    return frames


def write_open_gop_cut(path: Path, num_frames: int = 60, gop: int = 15, size: tuple[int, int] = (64, 96)) -> Path:
    """An mp4 cut at its second keyframe from an open-GOP H.264 encode (B-frames referencing
    across GOPs), packets copied: its first B-frames need the GOP that was cut away, so decoders
    drop them, and the file starts with a keyframe at display index ``gop``."""
    import av

    h, w = size
    whole = path.with_name(path.stem + ".whole.mp4")
    with av.open(str(whole), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"crf": "1", "preset": "ultrafast",
                          "x264-params": f"open-gop=1:keyint={gop}:min-keyint={gop}:bframes=3:b-adapt=0:scenecut=0"}
        for i in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(whole)) as source, av.open(str(path), "w") as cut:
        stream = source.streams.video[0]
        out = cut.add_stream_from_template(stream)
        keyframes = 0
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            keyframes += packet.is_keyframe
            if keyframes >= 2:
                packet.stream = out
                cut.mux(packet)
    whole.unlink()
    return path
