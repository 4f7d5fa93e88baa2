"""Write scikit-learn's bundled 8x8 digits as grey PNGs (no download): examples/digits/.

``train/`` gets the first 600 of a seeded shuffle, ``test/`` the next 60; values 0..16 are
scaled to 0..255. Run by ``make digits``; the PNGs are committed (about 70 KB), so this is
only needed to regenerate them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent


def main(root: Path = HERE / "digits", train: int = 600, test: int = 60) -> None:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    for folder, chosen in (("train", order[:train]), ("test", order[train:train + test])):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in chosen:
            name = f"{index:04d}_{digits.target[index]}.png"
            Image.fromarray(pixels[index]).save(root / folder / name, optimize=True)


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:2]))
