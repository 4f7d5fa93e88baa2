"""Inpainting quality and speed: gpupix's methods beside scikit-image and OpenCV.

Quality: PSNR over the missing pixels only, on photos of about 0.25 Mpx from the held-out
set (judged) and the tuning set (see ``benchmarks/_images.py``), each with two masks: 30% of
the pixels missing at random, and 10% at random plus four square holes of 40-48 pixels.
Peers: ``skimage.restoration.inpaint_biharmonic`` and OpenCV's ``INPAINT_NS`` and
``INPAINT_TELEA`` (radius 3; opencv-python-headless is in the dev extra). gpupix runs as its
job does with ``k: auto``: the default method (``smooth``), ``knn`` and ``knn_linear``. Every
fill is timed; the ratio is biharmonic's seconds over the default's, on the same image.

Speed: a 1024x1024 and a 2048x2048 image with 30% missing (the default's cost per missing
pixel), and the classic scenario (1280x915, 30% missing, K searched over 1..19, then
filled). Every ratio compares numbers measured in this run.

Large holes (``--large-holes``, that section alone): one 64x64 square hole, and one 8 px
wide scratch from corner to corner, on the same photos; biharmonic, cv2 NS and Telea,
gpupix ``smooth`` (the default, ``k: auto``) and ``exemplar``. ``--crops DIR`` writes
damaged | smooth | exemplar crops of the held-out repairs there as PNG.

    python benchmarks/bench_inpaint.py [--backend cpu|cuda] [--quick]
    python benchmarks/bench_inpaint.py --large-holes [--crops docs/img]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from skimage import data, transform
from skimage.restoration import inpaint_biharmonic

from gpupix.backends import get_backend
from gpupix.ops.corrupt import damage_mask
from gpupix.ops.inpaint import choose_k, inpaint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import HELDOUT, TUNING, photo  # noqa: E402

try:
    import cv2
except ImportError:  # optional peer
    cv2 = None

PIXELS = 250_000
OURS = (("smooth", "smooth"), ("knn", "knn"), ("knn_linear", "knn_linear"))


def psnr_missing(clean: np.ndarray, result: np.ndarray, missing: np.ndarray) -> float:
    error = ((clean.astype(np.float64) - result) ** 2)[missing].mean()
    return float(10 * np.log10(255.0**2 / error))


def masks(shape: tuple[int, int], index: int) -> dict[str, np.ndarray]:
    """30% at random; 10% at random plus four square holes of 40-48 pixels."""
    rng = np.random.default_rng(index)
    scattered = damage_mask(shape, drop=0.3, rng=rng)
    holes = damage_mask(shape, drop=0.1, rng=rng)
    for _ in range(4):
        side = int(rng.integers(40, 49))
        y = int(rng.integers(0, shape[0] - side + 1))
        x = int(rng.integers(0, shape[1] - side + 1))
        holes[y:y + side, x:x + side] = True
    return {"random 30%": scattered, "10% + holes": holes}


def timed(function, backend=None):
    start = time.perf_counter()
    result = function()
    if backend is not None:
        backend.synchronize()
    return result, time.perf_counter() - start


def gpupix_fill(backend, image, missing, *, method, k="auto", sweep=None, k_max=None):
    """Fill as the inpaint job does; ``sweep`` (a list) receives the seconds k: auto took."""
    device_image, device_missing = backend.to_device(image), backend.to_device(missing)
    if k == "auto":
        start = time.perf_counter()
        options = {} if k_max is None else {"k_max": k_max}
        k = choose_k(device_image, missing, backend=backend, method=method, **options).k
        backend.synchronize()
        if sweep is not None:
            sweep.append(time.perf_counter() - start)
    out = inpaint(device_image, device_missing, backend=backend, k=k, method=method)
    return backend.to_host(out), k


def biharmonic(image, missing):
    damaged = image.copy()
    damaged[missing] = 0
    out = inpaint_biharmonic(damaged, missing, channel_axis=-1)
    return np.clip(np.rint(out * 255), 0, 255)


def opencv(image, missing, flag):
    damaged = np.ascontiguousarray(image[..., ::-1])
    damaged[missing] = 0
    out = cv2.inpaint(damaged, missing.astype(np.uint8), 3, flag)
    return out[..., ::-1]


def peers() -> list[tuple[str, object]]:
    found = [("biharmonic", biharmonic)]
    if cv2 is not None:
        found += [("cv2 NS", partial(opencv, flag=cv2.INPAINT_NS)),
                  ("cv2 Telea", partial(opencv, flag=cv2.INPAINT_TELEA))]
    return found


def quality(backend, title: str, names) -> None:
    print(f"\n## {title}: PSNR over the missing pixels (dB), seconds in brackets")
    header = ["image", "mask", *(name for name, _ in peers()), *(label for label, _ in OURS),
              "smooth - best peer", "smooth speed-up vs biharmonic"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    margins, ratios = [], []
    for index, name in enumerate(names):
        image = photo(name, PIXELS)
        for mask_name, missing in masks(image.shape[:2], index).items():
            row = [f"{name} ({image.shape[1]}x{image.shape[0]})", mask_name]
            scores, seconds = {}, {}
            for peer, function in peers():
                out, seconds[peer] = timed(partial(function, image, missing))
                scores[peer] = psnr_missing(image, out, missing)
                row.append(f"{scores[peer]:.2f} ({seconds[peer]:.2f})")
            for label, method in OURS:
                (out, _), seconds[label] = timed(
                    partial(gpupix_fill, backend, image, missing, method=method), backend)
                scores[label] = psnr_missing(image, out, missing)
                row.append(f"{scores[label]:.2f} ({seconds[label]:.2f})")
            best_peer = max(scores[peer] for peer, _ in peers())
            margins.append(scores["smooth"] - best_peer)
            ratios.append(seconds["biharmonic"] / seconds["smooth"])
            row += [f"{margins[-1]:+.2f}", f"{ratios[-1]:.2f}x"]
            print("| " + " | ".join(row) + " |", flush=True)
    wins = sum(margin >= 0 for margin in margins)
    print(f"\nsmooth >= every peer on {wins} of {len(margins)} (margin {min(margins):+.2f} to "
          f"{max(margins):+.2f} dB); speed-up vs biharmonic {min(ratios):.2f}x to "
          f"{max(ratios):.2f}x (median {statistics.median(ratios):.2f}x, target >= 2x)")


def large_hole_masks(shape: tuple[int, int], index: int) -> dict[str, np.ndarray]:
    """A 64x64 square away from the borders; an 8 px wide scratch from corner to corner."""
    height, width = shape
    rng = np.random.default_rng(1000 + index)
    y = int(rng.integers(height // 4, 3 * height // 4 - 64))
    x = int(rng.integers(width // 4, 3 * width // 4 - 64))
    square = np.zeros(shape, bool)
    square[y:y + 64, x:x + 64] = True
    rows, cols = np.mgrid[0:height, 0:width]
    # perpendicular distance to the line from the top-left to the bottom-right corner
    distance = np.abs(height * cols - width * rows) / np.hypot(height, width)
    return {"64x64 square": square, "8 px scratch": distance < 4.0}


def crop_around(missing: np.ndarray, side: int = 160) -> tuple[slice, slice]:
    """A ``side`` square window centred on the damage (the middle of it for a scratch)."""
    rows, cols = np.nonzero(missing)
    cy, cx = int(np.median(rows)), int(np.median(cols))
    y0 = min(max(cy - side // 2, 0), missing.shape[0] - side)
    x0 = min(max(cx - side // 2, 0), missing.shape[1] - side)
    return slice(y0, y0 + side), slice(x0, x0 + side)


def large_holes(backend, title: str, names, crops: Path | None = None) -> None:
    print(f"\n## Large holes, {title}: PSNR over the missing pixels (dB), seconds in brackets")
    ours = (("smooth", "smooth"), ("exemplar", "exemplar"))
    header = ["image", "mask", *(name for name, _ in peers()), *(label for label, _ in ours),
              "exemplar - best other"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    margins = []
    for index, name in enumerate(names):
        image = photo(name, PIXELS)
        for mask_name, missing in large_hole_masks(image.shape[:2], index).items():
            row = [f"{name} ({image.shape[1]}x{image.shape[0]})", mask_name]
            scores, outputs = {}, {}
            for peer, function in peers():
                out, seconds = timed(partial(function, image, missing))
                scores[peer] = psnr_missing(image, out, missing)
                row.append(f"{scores[peer]:.2f} ({seconds:.2f})")
            for label, method in ours:
                (out, _), seconds = timed(
                    partial(gpupix_fill, backend, image, missing, method=method), backend)
                scores[label], outputs[label] = psnr_missing(image, out, missing), out
                row.append(f"{scores[label]:.2f} ({seconds:.2f})")
            margins.append(scores["exemplar"] - max(v for n, v in scores.items()
                                                    if n != "exemplar"))
            row.append(f"{margins[-1]:+.2f}")
            print("| " + " | ".join(row) + " |", flush=True)
            if crops is not None:
                from PIL import Image

                window = crop_around(missing)
                damaged = image.copy()
                damaged[missing] = (255, 0, 255)
                panels = [damaged[window], outputs["smooth"][window],
                          outputs["exemplar"][window]]
                gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
                strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
                slug = "scratch" if "scratch" in mask_name else "square"
                crops.mkdir(parents=True, exist_ok=True)
                Image.fromarray(strip.astype(np.uint8)).save(
                    crops / f"inpaint_large_{name}_{slug}.png", optimize=True)
    wins = sum(margin >= 0 for margin in margins)
    print(f"\nexemplar >= every other method on {wins} of {len(margins)} (margin "
          f"{min(margins):+.2f} to {max(margins):+.2f} dB)")


def large_image(size: tuple[int, int]) -> np.ndarray:
    image = data.astronaut()
    resized = transform.resize(image, size, order=3, anti_aliasing=False)
    return np.clip(np.rint(resized * 255), 0, 255).astype(np.uint8)


def speed(backend, size: int, *, knn: bool = True) -> None:
    print(f"\n## Speed: {size}x{size}, 30% missing (astronaut upscaled)")
    image = large_image((size, size))
    missing = damage_mask(image.shape[:2], drop=0.3, rng=np.random.default_rng(0))
    n_missing = int(missing.sum())
    out, reference = timed(lambda: biharmonic(image, missing))
    print(f"biharmonic: {reference:.2f} s, {psnr_missing(image, out, missing):.2f} dB")
    if cv2 is not None:
        out, seconds = timed(lambda: opencv(image, missing, cv2.INPAINT_NS))
        print(f"cv2 NS: {seconds:.2f} s, {psnr_missing(image, out, missing):.2f} dB")
    runs = [("smooth k=auto (the default)", "smooth")]
    if knn:
        runs += [("knn k=auto", "knn"), ("knn_linear k=auto", "knn_linear")]
    for label, method in runs:
        sweep: list[float] = []
        (out, chosen), seconds = timed(
            partial(gpupix_fill, backend, image, missing, method=method, sweep=sweep), backend)
        print(f"gpupix {label}: {seconds:.2f} s ({seconds / n_missing * 1e6:.2f} us per "
              f"missing pixel; k: auto {sweep[0]:.2f} s, chose k={chosen}), "
              f"{psnr_missing(image, out, missing):.2f} dB, "
              f"{reference / seconds:.2f}x faster than biharmonic", flush=True)


def classic_scenario(backend) -> None:
    print("\n## The classic scenario: 1280x915, 30% missing, K searched over 1..19, then filled")
    image = large_image((915, 1280))
    missing = damage_mask(image.shape[:2], drop=0.3, rng=np.random.default_rng(0))
    for method in ("smooth", "vote", "knn", "knn_linear"):
        k_max = None if method == "smooth" else 19  # smooth's k numbers its energies
        (out, k), seconds = timed(partial(gpupix_fill, backend, image, missing, method=method,
                                          k_max=k_max), backend)
        print(f"{method}: {seconds:.2f} s (target < 10 s), chose k={k}, "
              f"{psnr_missing(image, out, missing):.2f} dB on the missing pixels", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="one photo per set, speed at 1024x1024 only")
    parser.add_argument("--large-holes", action="store_true",
                        help="only the large-hole comparison (a 64 px square, a scratch)")
    parser.add_argument("--crops", type=Path, default=None,
                        help="with --large-holes: write damaged | smooth | exemplar crops here")
    args = parser.parse_args()
    backend = get_backend(args.backend)
    print(f"backend: {backend.describe()}")
    if cv2 is None:
        print("opencv-python-headless is not installed: the cv2 columns are left out")
    if args.large_holes:
        large_holes(backend, "held-out photos (judged)", HELDOUT[:1] if args.quick else HELDOUT,
                    args.crops)
        large_holes(backend, "tuning photos", TUNING[:1] if args.quick else TUNING)
        return
    quality(backend, "Held-out photos (judged)", HELDOUT[:1] if args.quick else HELDOUT)
    quality(backend, "Tuning photos", TUNING[:1] if args.quick else TUNING)
    speed(backend, 1024, knn=False)
    if not args.quick:
        speed(backend, 2048)
    classic_scenario(backend)


if __name__ == "__main__":
    main()
