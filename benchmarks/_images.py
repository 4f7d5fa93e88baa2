"""Benchmark images made from photos that ship inside installed packages (no downloads).

Two sets, kept apart on purpose:

- ``TUNING``: the photos the methods were developed and tuned on (scikit-image's astronaut,
  chelsea, coffee, rocket and the immunohistochemistry micrograph).
- ``HELDOUT``: photos nobody tunes on: scikit-learn's china and flower, matplotlib's
  grace_hopper, scikit-image's hubble_deep_field, retina and motorcycle_left (dark, highly
  saturated, smooth and textured cases). Benchmarks report both sets; a change is judged on
  the held-out one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TUNING = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
HELDOUT = ("china", "flower", "grace_hopper", "hubble_deep_field", "retina", "motorcycle_left")
PHOTOS = ("astronaut", "chelsea", "coffee")


def source(name: str) -> np.ndarray:
    """The full-size (H, W, 3) uint8 photo ``name`` from either set."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"))[..., :3]
    if name == "grace_hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        return np.asarray(Image.open(path).convert("RGB"))
    if name == "motorcycle_left":
        from skimage import data

        return np.asarray(data.stereo_motorcycle()[0])[..., :3]
    from skimage import data

    return np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB"))


def photo(name: str, pixels: int) -> np.ndarray:
    """Photo ``name`` (either set) resampled to about ``pixels`` pixels, aspect kept."""
    image = Image.fromarray(source(name))
    scale = (pixels / (image.width * image.height)) ** 0.5
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.convert("RGB").resize(size, Image.LANCZOS))


def photo_set(count: int, pixels: int, seed: int = 0,
              names: tuple[str, ...] = TUNING) -> list[np.ndarray]:
    """``count`` distinct photos of about ``pixels`` pixels: crops, flips and tints of the
    photos ``names``, so a folder benchmark does not see one image over and over."""
    rng = np.random.default_rng(seed)
    sources = [source(name) for name in names]
    side = int(pixels**0.5)
    images = []
    for i in range(count):
        picture = sources[i % len(sources)]
        h, w = picture.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        tile = Image.fromarray(picture[y:y + crop, x:x + crop]).resize((side, side),
                                                                      Image.BILINEAR)
        array = np.asarray(tile).astype(np.float32)
        if rng.random() < 0.5:
            array = array[:, ::-1]
        array = array * rng.uniform(0.85, 1.15, size=3)
        images.append(np.clip(np.rint(array), 0, 255).astype(np.uint8))
    return images
