import io
import os

import numpy as np
import pytest
from PIL import Image

from gpupix.errors import ConfigError, ImageError
from gpupix.io import (
    TEMP_PREFIX,
    decode,
    discover,
    encode_palette_png,
    remove_stale_temporaries,
    write_atomic,
)


def save(path, array, mode=None, **options):
    Image.fromarray(array, mode) if mode else Image.fromarray(array)
    (Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)).save(
        path, **options)
    return path


def test_discover_files_dirs_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sub").mkdir()
    for name in ("a/x.png", "a/y.JPG", "a/notes.txt", "a/sub/z.png"):
        (tmp_path / name).write_bytes(b"")
    flat = discover([str(tmp_path / "a")])
    assert [str(i.relative) for i in flat] == ["x.png", "y.JPG"]
    deep = discover([str(tmp_path / "a")], recursive=True)
    assert [str(i.relative) for i in deep] == ["sub/z.png", "x.png", "y.JPG"]
    globbed = discover([str(tmp_path / "a" / "*.png"), str(tmp_path / "a" / "x.png")])
    assert [str(i.relative) for i in globbed] == ["x.png"]  # de-duplicated


def test_discover_missing_path_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"input\.paths\[0\]: .* does not exist"):
        discover([str(tmp_path / "missing")])


@pytest.mark.parametrize("mode, channels", [
    ("RGB", 3), ("RGBA", 4), ("L", 3), ("LA", 4), ("P", 3), ("CMYK", 3), ("1", 3),
])
def test_decode_modes(tmp_path, mode, channels):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)
    decoded = decode(path)
    assert decoded.pixels.shape == (6, 5, channels) and decoded.pixels.dtype == np.uint8


def test_decode_16_bit_grey_scales_to_8_bits(tmp_path):
    values = np.array([[0, 65535], [257 * 128, 257]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    decoded = decode(path)
    assert decoded.pixels[..., 0].tolist() == [[0, 255], [128, 1]]


def test_decode_palette_with_transparency_keeps_alpha(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.info["transparency"] = 1
    path = tmp_path / "p.png"
    image.save(path, transparency=1)
    assert decode(path).pixels.shape[2] == 4


def test_decode_applies_exif_rotation(tmp_path):
    array = np.zeros((2, 6, 3), np.uint8)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "r.jpg"
    image.save(path, exif=exif)
    assert decode(path).pixels.shape[:2] == (6, 2)


@pytest.mark.parametrize("content", [b"", b"this is text", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_decode_bad_files_raise_image_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="bad.png"):
        decode(path)


def test_decode_refuses_oversized_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode(path, max_pixels=1000)


@pytest.mark.parametrize("entries, depth", [(2, 1), (3, 2), (16, 4), (17, 8), (256, 8)])
def test_palette_png_uses_smallest_bit_depth(entries, depth):
    indices = (np.arange(64).reshape(8, 8) % entries).astype(np.uint8)
    palette = np.random.default_rng(0).integers(0, 256, (entries, 3), dtype=np.uint8)
    data = encode_palette_png(indices, palette)
    assert data[24] == depth  # IHDR bit depth
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "P"
    np.testing.assert_array_equal(np.asarray(decoded.convert("RGB")), palette[indices])


def test_palette_png_transparency_round_trips():
    indices = np.array([[0, 1]], np.uint8)
    data = encode_palette_png(indices, np.array([[0, 0, 0], [9, 9, 9]], np.uint8),
                              alpha=np.zeros(1, np.uint8))
    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 255


def test_write_atomic_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "out.png"
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert os.listdir(target.parent) == ["out.png"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}abc").write_bytes(b"half")
    (tmp_path / "keep.png").write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 1
    assert os.listdir(tmp_path) == ["keep.png"]
