"""What is checked of a video file before decord decodes it, and what decord gets wrong.

decord decodes a cut or garbled GIF without an error, decodes a huge canvas at full size before
any downscaling, and lists timestamps for frames it never returns; these checks read the file
(its name, header, GIF blocks, container packets) so that such a video fails with a reason or
is read right. ``DecodeError`` is the failure every decoding step raises.
"""

from __future__ import annotations

import os
from pathlib import Path

GIF_TRAILER = b"\x3b"
_LEADING_PACKETS = 64  # packets after the first keyframe searched for leading B-frames (x264 allows 16)


class DecodeError(RuntimeError):
    """A video that cannot be used; ``reason`` goes into the manifest."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def check_file(path: Path, max_pixels: int) -> None:
    """Refuse what cannot be decoded whole and right, before the decoder sees it."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        # decord passes the name on as UTF-8 and cannot take the file's own bytes.
        raise DecodeError(path, f"file name is not valid UTF-8 ({os.fsencode(path.name)!r}): "
                                "rename the file to UTF-8 (e.g. convmv -f latin1 -t utf8)") from None
    if not path.exists():
        raise DecodeError(path, "file not found")
    if not path.is_file():
        raise DecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    is_gif = path.suffix.lower() == ".gif"
    if is_gif:
        with open(path, "rb") as f:
            head = f.read(6)
        if head not in (b"GIF87a", b"GIF89a"):
            raise DecodeError(path, f"not a GIF file (header {head!r})")
    _check_frame_size(path, max_pixels)  # before any decoding: the GIF walk below decodes too
    if is_gif:
        _check_gif_frames(path)


def _check_gif_frames(path: Path) -> None:
    # decord decodes a cut GIF up to the break and a garbled frame as garbage, without an error
    # (ffmpeg only logs "LZW decode failed"), and a cut GIF can end in a 0x3B that looks like
    # its trailer: Pillow decodes every frame and raises on both (13-30 ms per TGIF GIF, a third
    # of its decode).
    from PIL import Image

    frame = 0
    try:
        with Image.open(path) as im:
            for frame in range(getattr(im, "n_frames", 1)):
                im.seek(frame)
                im.load()
    except (OSError, EOFError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            trailer = f.read(1) == GIF_TRAILER
        kind = "truncated GIF" if "truncated" in str(e) or not trailer else "corrupt GIF"
        raise DecodeError(path, f"{kind}: frame {frame} cannot be decoded ({e})") from None


def _check_frame_size(path: Path, max_pixels: int) -> None:
    """Refuse a frame size over ``max_pixels``, read from the header without decoding."""
    size = _header_frame_size(path)
    if max_pixels and size and size[0] * size[1] > max_pixels:
        what = "GIF canvas" if path.suffix.lower() == ".gif" else "frame size"
        raise DecodeError(path, f"{what} {size[0]}x{size[1]} is over the decode budget of {max_pixels} pixels "
                                "(DecodeConfig.max_pixels; decoding it would take GBs of memory)")


def _header_frame_size(path: Path) -> tuple[int, int] | None:
    """(W, H) from the file's header: a GIF's logical screen, else the video stream's codec
    parameters (PyAV opens the container and decodes nothing); None when not readable (the
    decoder then reports why)."""
    if path.suffix.lower() == ".gif":
        with open(path, "rb") as f:
            screen = f.read(10)[6:]
        if len(screen) < 4:
            return None
        return int.from_bytes(screen[:2], "little"), int.from_bytes(screen[2:], "little")
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, IndexError, UnicodeError):
        return None


def leading_dropped(path: Path) -> int:
    """How many frames decord lists a timestamp for but never returns: the leading B-frames of
    a file cut at an open-GOP keyframe (they display before it and reference the GOP cut away,
    so the decoder drops them; decord's next() returns the later frames, then stale ones).

    They are the packets after the first keyframe, in decode order, with an earlier pts;
    read from the container (PyAV demuxes packets, decodes nothing) up to the next keyframe.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first, dropped = None, 0
            for n, packet in enumerate(container.demux(stream)):
                if packet.pts is None:
                    continue
                if first is None:
                    if not packet.is_keyframe:
                        return 0
                    first = packet.pts
                elif packet.is_keyframe or n > _LEADING_PACKETS:
                    break
                else:
                    dropped += packet.pts < first
            return dropped
    except (av.FFmpegError, IndexError, UnicodeError):
        return 0
