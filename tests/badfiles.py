"""Files that break image tools, made byte by byte: the reliability tests' inputs.

PNGs are assembled chunk by chunk so a test can declare any size, bit depth or checksum,
which Pillow's writer cannot (it writes no 16-bit RGB and never a wrong CRC).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes, *, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the correct checksum."""
    correct = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", correct if crc is None else crc)


def raw_png(width: int, height: int, rows: bytes, *, depth: int = 8, colour_type: int = 2
            ) -> bytes:
    """A PNG from filtered scanlines ``rows`` (each starting with its filter byte)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of an (H, W) grey, (H, W, 2) grey+alpha, (H, W, 3) RGB or (H, W, 4) RGBA
    uint16 array."""
    array = np.asarray(array, dtype=">u2")
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    height, width = array.shape[:2]
    rows = b"".join(b"\x00" + array[y].tobytes() for y in range(height))
    return raw_png(width, height, rows, depth=16, colour_type=colour_type)


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny file whose header declares ``width x height`` RGB pixels (2.7 GB by default).

    The data holds one scanline only; a decoder that trusts the header allocates it all.
    """
    return raw_png(width, height, b"\x00" * (1 + 3 * min(width, 64)))


def png_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def bad_crc_png(array: np.ndarray, chunk: bytes = b"IDAT") -> bytes:
    """A valid PNG of ``array`` whose ``chunk`` checksum is flipped (the data is intact)."""
    data = bytearray(png_bytes(array))
    start = data.index(chunk) - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    crc_at = start + 8 + length
    data[crc_at] ^= 0xFF
    return bytes(data)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
