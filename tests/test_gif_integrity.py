"""Every GIF is checked whole: a cut or garbled one fails with a reason instead of decoding short or wrong."""

from __future__ import annotations

import pytest

from extract.video import DecodeError, decode, open_video
from media import gif_frame_data, write_gif


@pytest.fixture
def gif(tmp_path):
    """12 frames of 170 ms: every frame is on the 6 fps grid."""
    return write_gif(tmp_path / "good.gif", [170] * 12, size=(72, 96))


def test_gif_cut_where_the_last_byte_happens_to_be_the_trailer_fails(gif, tmp_path):
    data = gif.read_bytes()
    start, _ = gif_frame_data(data)[6]
    cut = next(c for c in range(start + 20, len(data) - 1) if data[c - 1] == 0x3B)  # ends in 0x3B, mid-frame
    (tmp_path / "cut.gif").write_bytes(data[:cut])
    with pytest.raises(DecodeError, match=r"truncated GIF"):
        open_video(tmp_path / "cut.gif")
    assert len(decode(gif).frames) == 12


def test_gif_with_garbled_frame_data_and_its_trailer_fails(gif, tmp_path):
    data = bytearray(gif.read_bytes())
    start, length = gif_frame_data(data)[5]
    data[start + 10 : start + 60] = bytes(range(200, 250))  # inside frame 5's LZW data, block lengths intact
    assert data[-1] == 0x3B
    (tmp_path / "garbled.gif").write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"corrupt GIF: frame 5 cannot be decoded"):
        open_video(tmp_path / "garbled.gif")
