"""Find, decode, encode and atomically write images; a bounded read-ahead iterator.

Nothing here knows about jobs: it turns paths into ``(H, W, 3|4) uint8`` arrays and bytes
back into files, never leaving a half-written file behind.
"""

from __future__ import annotations

import glob
import io
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gpupix.errors import ConfigError, ImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
TEMP_PREFIX = ".gpupix-tmp-"
_GLOB_MAGIC = set("*?[")


@dataclass(frozen=True, order=True)
class InputItem:
    """An input image and the path its outputs take below the output directory."""

    relative: Path
    path: Path = field(compare=False)


@dataclass
class DecodedImage:
    """pixels : (H, W, 3) or (H, W, 4) uint8; ``mode`` is the file's own Pillow mode."""

    pixels: np.ndarray
    mode: str
    bytes_in: int
    notes: list[str] = field(default_factory=list)

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def rgb(self) -> np.ndarray:
        return self.pixels[..., :3]


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if _GLOB_MAGIC & set(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def discover(paths: Iterable[str], *, recursive: bool = False, field_name: str = "input.paths"
             ) -> list[InputItem]:
    """Expand files, directories and globs into sorted, de-duplicated :class:`InputItem` s.

    Directories take files whose suffix is in :data:`IMAGE_SUFFIXES`; a named file is taken
    whatever its suffix. A path that matches nothing raises :class:`ConfigError`.
    """
    found: dict[Path, InputItem] = {}
    for index, entry in enumerate(paths):
        candidates: list[tuple[Path, Path]] = []
        if _GLOB_MAGIC & set(entry):
            base = _glob_base(entry)
            for match in sorted(glob.glob(entry, recursive=recursive)):
                p = Path(match)
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    candidates.append((p, p.relative_to(base)))
        else:
            p = Path(entry)
            if p.is_dir():
                walker = p.rglob("*") if recursive else p.glob("*")
                for child in sorted(walker):
                    if child.suffix.lower() in IMAGE_SUFFIXES and child.is_file():
                        candidates.append((child, child.relative_to(p)))
            elif p.exists():
                candidates.append((p, Path(p.name)))
            else:
                raise ConfigError(f"{field_name}[{index}]: {entry!r} does not exist")
        for path, relative in candidates:
            key = path.resolve()
            if key not in found:
                found[key] = InputItem(relative=relative, path=path)
    return sorted(found.values())


def decode(path: Path, *, max_pixels: int | None = None) -> DecodedImage:
    """Read an image as (H, W, 3) RGB or (H, W, 4) RGBA uint8, upright per its EXIF tag.

    Palette and grey images become RGB (RGBA when they carry transparency); 16-bit images are
    scaled to 8 bits; CMYK is converted. Raises :class:`ImageError` with the reason.
    """
    limit = max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS
    try:
        size = path.stat().st_size
        with Image.open(path) as image:
            width, height = image.size
            if limit and width * height > limit:
                raise ImageError(f"{path}: {width}x{height} is more than {limit:,} pixels "
                                 "(a decompression bomb guard); refusing to decode")
            notes = []
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                notes.append(f"animated: first of {frames} frames used")
            image.load()
            image = ImageOps.exif_transpose(image) or image
            pixels = _to_uint8_array(image, path)
            mode = image.mode
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from None
    return DecodedImage(pixels=pixels, mode=mode, bytes_in=size, notes=notes)


def _to_uint8_array(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float32)
        peak = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    ):
        return np.asarray(image.convert("RGBA"))
    if mode in ("RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(image.convert("RGB"))
    raise ImageError(f"{path}: image mode {mode!r} is not supported "
                     "(supported: RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, I;16, I)")


def encode_palette_png(indices: np.ndarray, palette: np.ndarray, *,
                       alpha: np.ndarray | None = None, compress_level: int = 6) -> bytes:
    """Indexed PNG of ``indices`` (H, W) uint8 with ``palette`` (m, 3) uint8, m <= 256.

    Uses the smallest bit depth that holds m entries (1, 2, 4 or 8). ``alpha`` (m,) uint8 is
    written as the tRNS chunk.
    """
    n = len(palette)
    bits = 1 if n <= 2 else 2 if n <= 4 else 4 if n <= 16 else 8
    image = Image.fromarray(np.ascontiguousarray(indices, dtype=np.uint8), mode="P")
    image.putpalette(np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), rawmode="RGB")
    options: dict[str, object] = {"bits": bits, "compress_level": compress_level}
    if alpha is not None:
        options["transparency"] = np.asarray(alpha, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with _suppress_os_error():
            os.unlink(temp)
        raise


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files a killed run left in ``directory``; returns how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for temp in directory.rglob(f"{TEMP_PREFIX}*"):
        with _suppress_os_error():
            temp.unlink()
            removed += 1
    return removed


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterable[T], work: Callable[[T], R], *, pool: Executor, depth: int
               ) -> Iterator[tuple[T, Future[R]]]:
    """Yield ``(item, future)`` in input order, with at most ``depth`` futures in flight.

    Memory is bounded by ``depth`` whatever the number of items.
    """
    pending: deque[tuple[T, Future[R]]] = deque()
    iterator = iter(items)
    for item in iterator:
        pending.append((item, pool.submit(work, item)))
        if len(pending) >= max(depth, 1):
            break
    while pending:
        yield pending.popleft()
        for item in iterator:
            pending.append((item, pool.submit(work, item)))
            break
