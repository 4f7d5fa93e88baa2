"""Save and load a palette: ``palette.json`` (the colours as numbers) and ``palette.png``.

``palette: shared`` writes both to the output folder; ``palette: path/to/palette.json`` (or
the ``.png``) gives them back, so new images are quantized to the same colours. The PNG is
an indexed swatch image (16 x 16 pixels per entry, 16 entries a row) whose PLTE and tRNS
chunks are the palette itself, so any image viewer shows it and gpupix reads it back.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gpupix.errors import ConfigError, ImageError
from gpupix.io import open_image

FORMAT = "gpupix-palette"
VERSION = 1
SWATCH = 16  # pixels per entry, each way
PER_ROW = 16


def palette_json(colours: np.ndarray, alpha: np.ndarray | None, **info: Any) -> bytes:
    """``palette.json`` contents: colours (m, 3) uint8, alpha (m,) uint8 or None, and info."""
    document = {"format": FORMAT, "version": VERSION,
                "colours": np.asarray(colours, np.uint8).tolist(),
                "alpha": None if alpha is None else np.asarray(alpha, np.uint8).tolist(),
                **info}
    return (json.dumps(document, indent=1) + "\n").encode()


def palette_png(colours: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """An indexed PNG of swatches whose palette (PLTE, tRNS) is exactly ``colours``/``alpha``."""
    m = len(colours)
    columns = min(m, PER_ROW)
    rows = -(-m // PER_ROW)
    grid = np.zeros((rows, columns), np.uint8)
    grid.ravel()[:m] = np.arange(m, dtype=np.uint8)
    grid.ravel()[m:] = m - 1  # the tail of the last row repeats the last entry
    indices = np.kron(grid, np.ones((SWATCH, SWATCH), np.uint8))
    image = Image.fromarray(indices, mode="P")
    image.putpalette(np.ascontiguousarray(colours, np.uint8).tobytes(), rawmode="RGB")
    options: dict[str, Any] = {}
    if alpha is not None:
        options["transparency"] = np.asarray(alpha, np.uint8).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def load_palette(path: str | Path, *, field: str = "quantize.palette"
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(colours (m, 3) uint8, alpha (m,) uint8 or None)`` from a .json or .png palette.

    The file is untrusted: a JSON palette is at most :data:`MAX_JSON_BYTES` and is checked
    value by value; a PNG swatch goes through :func:`gpupix.io.open_image` (decoder
    allowlist, decompression bomb guard) like any image. Raises :class:`ConfigError` naming
    ``field`` and the file when it cannot be used.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}: {str(path)!r} does not exist")
    try:
        if path.suffix.lower() == ".json":
            colours, alpha = _read_json(path)
        else:
            colours, alpha = _read_png(path)
    except ConfigError:
        raise
    except ImageError as exc:  # already names the file
        raise ConfigError(f"{field}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        raise ConfigError(f"{field}: {str(path)!r} is not a usable palette ({reason})"
                          ) from None
    if not 1 <= len(colours) <= 256:
        raise ConfigError(f"{field}: {str(path)!r} has {len(colours)} colours; use 1..256")
    return colours, alpha


# 256 entries of [r, g, b] and an alpha list, with the fitting's notes, are a few KB
MAX_JSON_BYTES = 1 << 20


def _read_json(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with open(path, "rb") as handle:  # a FIFO is refused by is_file() above
        data = handle.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"more than {MAX_JSON_BYTES:,} bytes; a palette.json is a few KB")
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"expected a JSON object with format {FORMAT!r}")
    colours = document.get("colours")
    if not isinstance(colours, list) or not 1 <= len(colours) <= 256 or not all(
            isinstance(c, list) and len(c) == 3 and all(_byte(v) for v in c) for c in colours):
        raise ValueError("colours must be a list of 1..256 [r, g, b] with whole values 0..255")
    alpha = document.get("alpha")
    if alpha is not None:
        if not isinstance(alpha, list) or len(alpha) != len(colours) or not all(
                _byte(v) for v in alpha):
            raise ValueError("alpha must list one whole value 0..255 per colour")
        alpha = np.asarray(alpha, np.uint8)
    return np.asarray(colours, np.uint8).reshape(-1, 3), alpha


def _byte(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _read_png(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with open_image(path) as (image, _):
        if image.format != "PNG" or image.mode != "P":
            raise ValueError(f"expected an indexed (mode P) PNG, got {image.format} mode "
                             f"{image.mode!r}")
        indices, colours, alpha = indexed_parts(image)
    used = max(int(indices.max(initial=0)) + 1, 1)
    transparent = "transparency" in image.info
    return colours[:used], (alpha[:used] if transparent else None)


def indexed_parts(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An indexed (mode P) image's ``(indices (H, W), colours (m, 3), alpha (m,))``, uint8.

    ``m`` covers every PLTE entry and the highest index used (an index past PLTE is black);
    alpha comes from tRNS (a table, or one transparent index) and is 255 elsewhere.
    """
    image.load()
    indices = np.asarray(image)
    raw = np.asarray(image.getpalette() or [], np.uint8)
    entries = max(int(indices.max(initial=0)) + 1, len(raw) // 3)
    colours = np.zeros((entries, 3), np.uint8)
    colours.ravel()[: len(raw)] = raw[: entries * 3]
    alpha = np.full(entries, 255, np.uint8)
    transparency = image.info.get("transparency")
    if isinstance(transparency, bytes):
        given = np.frombuffer(transparency, np.uint8)[:entries]
        alpha[: len(given)] = given
    elif isinstance(transparency, int) and 0 <= transparency < entries:
        alpha[transparency] = 0
    return indices, colours, alpha
