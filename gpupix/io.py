"""Find, decode, encode and atomically write images; a bounded read-ahead iterator.

Nothing here knows about jobs: it turns paths into ``(H, W, 3|4) uint8`` arrays and bytes
back into files, never leaving a half-written file behind.
"""

from __future__ import annotations

import errno
import glob
import io
import os
import re
import stat
import threading
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gpupix import output_dir
from gpupix.errors import ConfigError, ImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# Pillow identifies a file by its content, not its name: only these decoders may run, so a
# file named .png that is really EPS (Ghostscript) or another exotic format is refused.
DECODE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG includes MPO
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEMP_PREFIX = output_dir.TEMP_PREFIX
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
    path: Path | None = None  # the file it came from (jobs that read files beside it)

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def rgb(self) -> np.ndarray:
        return self.pixels[..., :3]


def is_glob(entry: str) -> bool:
    """A pattern to expand: it has ``*``, ``?`` or ``[`` and names no existing file or folder.

    ``photos [2024]`` that exists is that folder, not a character class.
    """
    return bool(_GLOB_MAGIC & set(entry)) and not os.path.lexists(entry)


def _below(base: str, path: Path) -> Path:
    """``path`` relative to the glob's base; a match outside it (``in/*/../../x.png``) keeps
    only its name, so its outputs stay below output.dir whatever the pattern."""
    relative = os.path.relpath(path, base)
    if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
        return Path(path.name)
    return Path(relative)


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
    whatever its suffix. A path that does not exist raises :class:`ConfigError`; a folder or
    glob with no images gives no items. Entries that are not directories are kept even when
    they cannot be read (a broken symlink, a symlink loop, a FIFO, no permission), so that
    :func:`decode` reports each as a failed image instead of it vanishing from the batch.
    Directory symlinks are not followed by ``recursive`` folder walks; ``**`` globs follow
    them, and a loop ends where the system stops resolving it (duplicates are dropped).
    """
    found: dict[Path, InputItem] = {}
    for index, entry in enumerate(paths):
        candidates: list[tuple[Path, Path]] = []
        if is_glob(entry):
            base = os.path.realpath(_glob_base(entry))
            for match in sorted(glob.glob(entry, recursive=recursive)):
                p = Path(match)
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir():
                    # where the file really is (its folder resolved, as the kernel would)
                    real = Path(os.path.realpath(p.parent), p.name)
                    candidates.append((p, _below(base, real)))
        else:
            p = Path(entry)
            if p.is_dir():
                walker = p.rglob("*") if recursive else p.glob("*")
                for child in sorted(walker):
                    if child.suffix.lower() in IMAGE_SUFFIXES and not child.is_dir():
                        candidates.append((child, child.relative_to(p)))
            elif p.exists() or p.is_symlink():
                candidates.append((p, Path(p.name)))
            else:
                raise ConfigError(f"{field_name}[{index}]: {entry!r} does not exist")
        for path, relative in candidates:
            key = Path(os.path.realpath(path))  # never raises, even on a symlink loop
            if key not in found:
                found[key] = InputItem(relative=relative, path=path)
    return sorted(found.values())


def decode(path: Path, *, max_pixels: int | None = None) -> DecodedImage:
    """Read an image as (H, W, 3) RGB or (H, W, 4) RGBA uint8, upright per its EXIF tag.

    Palette and grey images become RGB (RGBA when they carry transparency); 16-bit images are
    scaled to 8 bits; CMYK is converted; a multi-frame file (animated GIF, multi-page TIFF)
    gives its first frame and says so in ``notes``. The file is opened by
    :func:`open_image` (its guards apply). Raises :class:`ImageError` with one line naming
    the file and the reason.
    """
    with open_image(path, max_pixels=max_pixels) as (image, size):
        notes = []
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"{frames} frames: only the first is used")
            image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        pixels = _to_uint8_array(image, path)
        mode = image.mode
    return DecodedImage(pixels=pixels, mode=mode, bytes_in=size, notes=notes, path=path)


@contextmanager
def open_image(path: Path, *, max_pixels: int | None = None
               ) -> Iterator[tuple[Image.Image, int]]:
    """Open an untrusted image file: yields the Pillow image (not yet decoded) and its size.

    Every picture gpupix reads (inputs, masks, palette swatches, report thumbnails) comes
    through here. Only regular files are opened, PNG chunk checksums are verified, only
    :data:`DECODE_FORMATS` are decoded whatever the name says, and the declared size is
    checked against ``max_pixels`` (default: Pillow's ``Image.MAX_IMAGE_PIXELS``) before
    any pixel is decoded. Whatever goes wrong while the image is used inside the ``with``
    block, too, raises :class:`ImageError` with one line naming the file and the reason.
    """
    limit = max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS
    size = _check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(8) == PNG_SIGNATURE:
                _check_png_chunks(handle, path)
            handle.seek(0)
            Image.init()  # registers every plugin once, so ``formats`` can name any of them
            with warnings.catch_warnings():
                # the size is checked below with a clearer message than Pillow's warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle, formats=DECODE_FORMATS)
            with image:
                width, height = image.size
                if limit and width * height > limit:
                    raise ImageError(_bomb_message(path, width, height, limit))
                yield image, size
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses sizes past twice its limit while opening, before we see the size
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(declared.group(1)):,} pixels" if declared else "a size"
        raise ImageError(f"{path}: declares {pixels}, more than the {limit:,} allowed (a "
                         "decompression bomb guard); refused before decoding") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image in a supported format "
                         f"({', '.join(DECODE_FORMATS)})") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({_os_reason(exc)})") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode it") from None
    except Exception as exc:  # noqa: BLE001 - Pillow parses untrusted bytes; any slip is a bad file
        raise ImageError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from None


def _check_regular_file(path: Path) -> int:
    """Size of ``path``; refuses, without opening it, anything that is not a regular file.

    Opening a FIFO would block forever and a device could stream without end.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise ImageError(f"{path}: broken symbolic link (its target does not exist)"
                             ) from None
        raise ImageError(f"{path}: cannot read ({_os_reason(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket"
                if stat.S_ISSOCK(info.st_mode) else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a directory"
                if stat.S_ISDIR(info.st_mode) else "not a regular file")
        raise ImageError(f"{path}: is {kind}, not an image file; skipped without reading it")
    if info.st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return info.st_size


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def _bomb_message(path: Path, width: int, height: int, limit: int) -> str:
    return (f"{path}: declares {width}x{height} = {width * height:,} pixels, more than the "
            f"{limit:,} allowed (a decompression bomb guard); refused before decoding")


def _check_png_chunks(handle: io.BufferedReader, path: Path) -> None:
    """Verify every PNG chunk's CRC (Pillow skips those of the image data).

    Streams the file in bounded pieces, so memory does not grow with the file. Stops at IEND;
    a file that ends before IEND is reported as truncated.
    """
    offset = 8
    while True:
        header = handle.read(8)
        if len(header) < 8:
            raise ImageError(f"{path}: truncated PNG (ends at byte {offset} without IEND)")
        length = int.from_bytes(header[:4], "big")
        kind = header[4:8]
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise ImageError(f"{path}: corrupt PNG (bad chunk header at byte {offset})")
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            piece = handle.read(min(remaining, 1 << 20))
            if not piece:
                raise ImageError(f"{path}: truncated PNG (chunk {kind.decode()} at byte "
                                 f"{offset} is cut short)")
            crc = zlib.crc32(piece, crc)
            remaining -= len(piece)
        stored = handle.read(4)
        if len(stored) < 4:
            raise ImageError(f"{path}: truncated PNG (chunk {kind.decode()} at byte {offset} "
                             "has no checksum)")
        if int.from_bytes(stored, "big") != crc:
            raise ImageError(f"{path}: corrupt PNG (bad CRC in chunk {kind.decode()} at byte "
                             f"{offset})")
        if kind == b"IEND":
            return
        offset += 12 + length


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


OUTPUT_SUFFIXES = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
# A mask beside its image: NAME.mask.png, white where pixels are missing (corrupt writes
# it, inpaint reads it, the report shows it).
MASK_SUFFIX = ".mask.png"


def encode_image(pixels: np.ndarray, *, format: str = "png", quality: int = 90) -> bytes:
    """(H, W) grey or (H, W, 3|4) uint8 -> PNG, lossless WebP, or JPEG (alpha dropped)."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    buffer = io.BytesIO()
    if format == "jpeg":
        image.convert("RGB" if image.mode != "L" else "L").save(buffer, format="JPEG",
                                                                 quality=quality)
    elif format == "webp":
        image.save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_palette_image(indices: np.ndarray, palette: np.ndarray, *,
                         alpha: np.ndarray | None = None, format: str = "png") -> bytes:
    """A palette image as PNG (indexed, :func:`encode_palette_png`) or lossless WebP."""
    if format != "webp":
        return encode_palette_png(indices, palette, alpha=alpha)
    colours = np.asarray(palette, np.uint8)
    if alpha is not None:
        colours = np.concatenate([colours, np.asarray(alpha, np.uint8)[:, None]], axis=1)
    return encode_image(colours[np.asarray(indices, np.intp)], format="webp")


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


def write_atomic(path: Path, data: bytes, *, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename.

    ``root`` is the output folder the write must stay in: no folder between it and ``path``
    may be a symbolic link, nor ``path`` itself (see :mod:`gpupix.output_dir`). Without it,
    ``path``'s own folder is the root.
    """
    path = Path(path)
    if root is None:
        root = path.parent
        root.mkdir(parents=True, exist_ok=True)
    output_dir.write_atomic(path, data, root=Path(root))


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files a killed run left in ``directory``; returns how many."""
    return output_dir.remove_stale_temporaries(Path(directory))


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


T = TypeVar("T")
R = TypeVar("R")


def until_stopped(items: Iterable[T], stop: threading.Event | None) -> Iterator[T]:
    """``items`` until ``stop`` is set: an executor fed through this takes no new work after."""
    for item in items:
        if stop is not None and stop.is_set():
            return
        yield item


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
