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

from gpupix.errors import ConfigError

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

    Raises :class:`ConfigError` naming ``field`` and the file when it cannot be used.
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
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{field}: {str(path)!r} is not a usable palette "
                          f"({type(exc).__name__}: {exc})") from None
    if not 1 <= len(colours) <= 256:
        raise ConfigError(f"{field}: {str(path)!r} has {len(colours)} colours; use 1..256")
    return colours, alpha


def _read_json(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"expected a JSON object with format {FORMAT!r}")
    colours = np.asarray(document["colours"])
    if colours.ndim != 2 or colours.shape[1] != 3 or colours.min(initial=0) < 0 \
            or colours.max(initial=0) > 255:
        raise ValueError("colours must be a list of [r, g, b] with values 0..255")
    alpha = document.get("alpha")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != (len(colours),) or alpha.min(initial=0) < 0 or alpha.max(initial=0) > 255:
            raise ValueError("alpha must list one value 0..255 per colour")
        alpha = alpha.astype(np.uint8)
    return colours.astype(np.uint8), alpha


def _read_png(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with Image.open(path) as image:
        if image.mode != "P":
            raise ValueError(f"expected an indexed (mode P) PNG, got mode {image.mode!r}")
        used = int(np.asarray(image).max(initial=0)) + 1
        flat = np.asarray(image.getpalette() or [], np.uint8)
        colours = flat.reshape(-1, 3)[:max(used, 1)]
        transparency = image.info.get("transparency")
    alpha = None
    if isinstance(transparency, bytes):
        alpha = np.full(len(colours), 255, np.uint8)
        given = np.frombuffer(transparency, np.uint8)[:len(colours)]
        alpha[:len(given)] = given
    elif isinstance(transparency, int) and transparency < len(colours):
        alpha = np.full(len(colours), 255, np.uint8)
        alpha[transparency] = 0
    return colours, alpha
