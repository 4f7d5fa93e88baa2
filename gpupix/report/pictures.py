"""Image analysis for the cards: reading, thumbnails and large views, heat map, palette, scatter.

Everything here runs on the host (Pillow, NumPy) from one decode of each file. A card's
pictures go into two sprites (one file holding every thumbnail side by side, and one holding
the larger views the page opens on a click): on a loaded disk, creating a file costs more
than encoding a thumbnail.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from gpupix.errors import ImageError
from gpupix.io import decode, open_image, write_atomic
from gpupix.palette_io import indexed_parts

THUMB_SIZE = 160   # a thumbnail's longer side at most, in pixels
VIEW_SIZE = 640    # the larger view a click opens: enough to judge banding and edges
SCATTER_SAMPLE = 1500
SCATTER_SIZE = 160
ERROR_SCALE = 64.0  # RGB distance at which the heat map saturates: the same scale on every card
# inferno-like anchors for the heat map: dark = no difference, bright = ERROR_SCALE or more
HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                         [252, 255, 164]], dtype=np.float32)
HEAT_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(HEAT_ANCHORS)),
                               HEAT_ANCHORS[:, c]) for c in range(3)], axis=1).astype(np.uint8)


@dataclass
class Crop:
    """Where a picture sits in its sprite: the page shows ``width x height`` from ``x``."""

    src: str = ""
    x: int = 0
    width: int = 0
    height: int = 0
    sprite: tuple[int, int] = (0, 0)


@dataclass
class Panel:
    """One picture on a card: a thumbnail and a larger view, or why there is none."""

    label: str
    link: str | None = None          # the shown file, relative to the output folder
    caption: str = ""
    problem: str | None = None
    zoom: int = 1                    # the thumbnail is shown enlarged by this whole factor
    thumb: Crop | None = None
    view: Crop | None = None
    images: tuple[Image.Image, Image.Image] | None = None  # (thumb, view) until written


def rgb_to_hex(rgb: Any) -> str:
    red, green, blue = (int(v) for v in rgb)
    return f"#{red:02x}{green:02x}{blue:02x}"


def hex_to_rgb(code: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    code = code.lstrip("#")
    if len(code) != 6:
        return default
    try:
        return (int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16))
    except ValueError:
        return default


def size_text(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"


def read_pixels(path: Path | None, problems: list[str]) -> np.ndarray | None:
    """The picture at ``path`` with the engine's decoder, or None (the reason appended)."""
    if path is None:
        return None
    try:
        return decode(path).pixels
    except (ImageError, OSError) as exc:
        problems.append(str(exc))
        return None


def read_output(path: Path, problems: list[str]
                ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None,
                           np.ndarray | None]:
    """The output's pixels, and for a palette PNG its indices, palette and per-entry alpha."""
    try:
        with open_image(path) as (image, _):
            parts = indexed_parts(image) if image.mode == "P" else None
        if parts is None:  # any other picture: the engine's own decoder (modes, EXIF)
            return decode(path).pixels, None, None, None
    except (OSError, ValueError, ImageError) as exc:
        problems.append(f"{path}: cannot read the output ({exc})")
        return None, None, None, None
    indices, palette, alpha = parts
    pixels = palette[indices]
    if (alpha < 255).any():
        pixels = np.dstack([pixels, alpha[indices]])
    return pixels, indices, palette, alpha


def _shrink(image: Image.Image, size: int) -> Image.Image:
    if max(image.size) > size:
        image = image.copy()
        image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def make_panel(label: str, pixels: np.ndarray | None, link: str | None, *,
               problem: str | None = None, caption: str = "",
               thumb_pixels: np.ndarray | None = None) -> Panel:
    """A panel with its view (at most VIEW_SIZE) and thumbnail (at most THUMB_SIZE) in memory.

    ``thumb_pixels``: a thumbnail made otherwise (the heat map averages its errors, not its
    colours); by default the view scaled down.
    """
    panel = Panel(label=label, link=link)
    if pixels is None:
        panel.problem = problem or "not available"
        return panel
    height, width = pixels.shape[:2]
    panel.caption = caption or f"{width}\u00d7{height}"
    view = _shrink(Image.fromarray(pixels), VIEW_SIZE)
    thumb = Image.fromarray(thumb_pixels) if thumb_pixels is not None else _shrink(view,
                                                                                  THUMB_SIZE)
    panel.images = (thumb, view)
    # small images are shown enlarged by a whole factor, pixels kept sharp (a palette stays one)
    panel.zoom = max(1, THUMB_SIZE // max(thumb.size))
    return panel


def save(target: Path, output_dir: Path, draw: Callable[[IO[bytes]], Any]) -> None:
    """``draw(stream)`` into memory, then one atomic write below output.dir (no link)."""
    buffer = io.BytesIO()
    draw(buffer)
    write_atomic(target, buffer.getvalue(), root=output_dir)


def write_sprites(panels: list[Panel], thumbs: Path, views: Path, output_dir: Path,
                  href: Callable[[Path], str]) -> list[str]:
    """Write a card's thumbnails into one sprite and its views into another; fill the crops.

    When no view is larger than its thumbnail (small images) the views are the thumbnails:
    one file, shown enlarged. ``thumbs`` and ``views`` are targets without their suffix
    (.jpg, or .png when a picture has transparency). Returns the files written.
    """
    shown = [panel for panel in panels if panel.images is not None]
    if not shown:
        return []
    written = [_sprite(shown, 0, thumbs, output_dir, href)]
    if any(panel.images[1].size != panel.images[0].size for panel in shown):
        written.append(_sprite(shown, 1, views, output_dir, href))
    for panel in shown:
        panel.view = panel.view or panel.thumb
        panel.images = None
    return written


def _sprite(shown: list[Panel], which: int, target: Path, output_dir: Path,
            href: Callable[[Path], str]) -> str:
    """JPEG at 4:4:4 keeps the scatter's dots and the heat map's colours sharp (quality 90 for
    thumbnails, 92 for views); PNG when a picture has transparency."""
    images = [panel.images[which] for panel in shown]
    alpha = any(image.mode in ("RGBA", "LA", "PA") for image in images)
    mode = "RGBA" if alpha else "RGB"
    width = sum(image.size[0] for image in images)
    height = max(image.size[1] for image in images)
    sprite = Image.new(mode, (width, height), (0, 0, 0, 0) if alpha else (255, 255, 255))
    target = target.with_suffix(".png" if alpha else ".jpg")
    src = href(target)
    offset = 0
    for panel, image in zip(shown, images, strict=True):
        sprite.paste(image.convert(mode), (offset, 0))
        crop = Crop(src=src, x=offset, width=image.size[0], height=image.size[1],
                    sprite=(width, height))
        if which == 0:
            panel.thumb = crop
        else:
            panel.view = crop
        offset += image.size[0]
    if alpha:
        save(target, output_dir, lambda out: sprite.save(out, format="PNG", compress_level=1))
    else:  # the views are for judging banding: fewer JPEG artefacts there
        quality = 90 if which == 0 else 92
        save(target, output_dir,
             lambda out: sprite.save(out, format="JPEG", quality=quality, subsampling=0))
    return src


def heat_map(output: np.ndarray, against: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel RGB distance as colours: (view, thumbnail), each the error averaged down.

    The error is taken at full resolution (row blocks bound the memory) and averaged, not
    the colours, so a level on the scale means the same at every size.
    """
    height, width = output.shape[:2]
    error = np.empty((height, width), np.float32)
    for top in range(0, height, 256):
        block = slice(top, top + 256)
        diff = output[block, :, :3].astype(np.float32) - against[block, :, :3].astype(np.float32)
        error[block] = np.sqrt(np.einsum("ijc,ijc->ij", diff, diff))
    for image in (output, against):  # transparent pixels are not judged
        if image.shape[2] == 4:
            error[image[..., 3] == 0] = 0.0
    view = _average_down(error, VIEW_SIZE)
    return _heat_colours(view), _heat_colours(_average_down(view, THUMB_SIZE))


def _average_down(error: np.ndarray, size: int) -> np.ndarray:
    height, width = error.shape
    if max(height, width) <= size:
        return error
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(error, "F").resize(shape, Image.Resampling.BOX))


def _heat_colours(error: np.ndarray) -> np.ndarray:
    level = np.clip(error * (255.0 / ERROR_SCALE), 0, 255).astype(np.uint8)
    return HEAT_LUT[level]


def palette_shares(indices: np.ndarray, palette: np.ndarray, alpha: np.ndarray | None
                   ) -> tuple[list[tuple[str, float]], str]:
    """A palette PNG's entries with their pixel shares (index histogram), and a note."""
    counts = np.bincount(indices.ravel(), minlength=len(palette)).astype(np.float64)
    note = ""
    if alpha is not None:
        transparent = int(counts[alpha == 0].sum())
        counts[alpha == 0] = 0
        if transparent:
            note = f"plus a transparent entry ({transparent:,} pixels)"
    total = counts.sum()
    if not total:
        return [], note
    return [(rgb_to_hex(palette[i]), counts[i] / total)
            for i in range(len(palette)) if counts[i] > 0], note


def scatter(source: np.ndarray, indices: np.ndarray, palette: np.ndarray,
            alpha: np.ndarray | None, *, seed: int) -> tuple[np.ndarray, float]:
    """a*-b* (CIELAB) scatter of a pixel sample, each dot in its palette entry's colour.

    Rasterized with NumPy rather than matplotlib: a few hundred microseconds, so every card
    can have one. Returns the (160, 160, 3) picture and the limit: the axes span +-limit
    around the neutral axis (the cross).
    """
    from gpupix.ops.color import rgb_to_lab

    rng = np.random.default_rng(seed)
    flat = rng.integers(0, indices.size, size=min(SCATTER_SAMPLE, indices.size))
    labels = indices.ravel()[flat]
    if alpha is not None:
        keep = alpha[labels] > 0
        flat, labels = flat[keep], labels[keep]
    colours = source[..., :3].reshape(-1, 3)[flat].astype(np.float32)
    lab = np.asarray(rgb_to_lab(colours))
    used = np.unique(labels)
    centres = np.asarray(rgb_to_lab(palette[used].astype(np.float32)))
    extent = np.abs(np.concatenate([lab[:, 1:], centres[:, 1:]])) if len(lab) else np.zeros(1)
    limit = float(max(16.0, math.ceil(float(extent.max(initial=0)) / 8.0) * 8.0))
    size = SCATTER_SIZE
    canvas = np.full((size, size, 3), 250, np.uint8)
    middle = size // 2
    canvas[middle, :] = canvas[:, middle] = 200

    def position(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.rint((values[:, 1] / limit + 1) * (size - 1) / 2).astype(int)
        y = np.rint((1 - values[:, 2] / limit) * (size - 1) / 2).astype(int)
        return np.clip(x, 1, size - 3), np.clip(y, 1, size - 3)

    x, y = position(lab)
    for dx in (0, 1):
        for dy in (0, 1):
            canvas[y + dy, x + dx] = palette[labels]
    cx, cy = position(centres)
    for radius, colours in ((4, np.uint8(30)), (3, palette[used][:, None])):
        offsets = np.arange(-radius, radius + 1)
        px = np.clip(cx[:, None] + offsets[None, :], 0, size - 1)  # (entries, side)
        py = np.clip(cy[:, None] + offsets[None, :], 0, size - 1)
        canvas[py[:, :, None], px[:, None, :]] = colours if np.ndim(colours) == 0 \
            else colours[:, :, None]
    return canvas, limit
