"""Benchmark images made from scikit-image's bundled photos (no downloads)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def photo(name: str, pixels: int) -> np.ndarray:
    """scikit-image's ``name`` photo resampled to about ``pixels`` pixels, aspect kept."""
    from skimage import data

    image = Image.fromarray(getattr(data, name)())
    scale = (pixels / (image.width * image.height)) ** 0.5
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.convert("RGB").resize(size, Image.LANCZOS))


PHOTOS = ("astronaut", "chelsea", "coffee")


def photo_set(count: int, pixels: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` distinct photos of about ``pixels`` pixels: crops, flips and tints of the
    bundled photos, so a folder benchmark does not see one image over and over."""
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB"))
               for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
    side = int(pixels**0.5)
    images = []
    for i in range(count):
        source = sources[i % len(sources)]
        h, w = source.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        tile = Image.fromarray(source[y:y + crop, x:x + crop]).resize((side, side), Image.BILINEAR)
        array = np.asarray(tile).astype(np.float32)
        if rng.random() < 0.5:
            array = array[:, ::-1]
        array = array * rng.uniform(0.85, 1.15, size=3)
        images.append(np.clip(np.rint(array), 0, 255).astype(np.uint8))
    return images
