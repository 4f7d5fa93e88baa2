"""Property tests (hypothesis): any image shape, mode and parameter in range, on the cpu backend.

No exception but gpupix's own (GpupixError), and outputs of the right shape and dtype.
Each op or job is one entry in OPS or JOBS: a strategy for its parameters, a call, a check.
Examples are drawn from a fixed seed (``derandomize``) so CI runs the same ones every time;
``GPUPIX_PROPERTY_EXAMPLES=500`` explores further (and, when set, from a random seed).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from gpupix.backends import CpuBackend
from gpupix.config import validate_config
from gpupix.errors import GpupixError
from gpupix.io import decode
from gpupix.jobs import make_job
from gpupix.ops.alpha import quantize_rgba
from gpupix.ops.color import ColorSpace, rgb_to_space, space_to_rgb
from gpupix.ops.corrupt import corrupt
from gpupix.ops.denoise import denoise_self, denoise_self_knn
from gpupix.ops.dither import floyd_steinberg
from gpupix.ops.inpaint import METHODS, inpaint
from gpupix.ops.inpaint_smooth import ENERGIES
from gpupix.ops.metrics import METRICS, compute_metrics
from gpupix.ops.quantize import quantize

_EXAMPLES = os.environ.get("GPUPIX_PROPERTY_EXAMPLES")
PROPERTY_SETTINGS = settings(max_examples=int(_EXAMPLES or 30), deadline=None,
                             derandomize=_EXAMPLES is None,
                             suppress_health_check=[HealthCheck.too_slow])
# Pillow modes an input file can have, and the format that can store each
SPACES = sorted(get_args(ColorSpace))  # every colour space the code knows, as it grows
MODES = {"RGB": "PNG", "RGBA": "PNG", "L": "PNG", "LA": "PNG", "P": "PNG", "1": "PNG",
         "I;16": "PNG", "CMYK": "TIFF", "I": "TIFF"}


@st.composite
def pixels(draw, max_side: int = 24) -> np.ndarray:
    """An (H, W, 4) uint8 RGBA array: 1..max_side a side, few or many colours, some alpha."""
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    colours = draw(st.sampled_from([1, 2, 3, 17, 300, 0]))  # 0: every pixel its own
    if colours:
        palette = rng.integers(0, 256, (colours, 4), dtype=np.uint8)
        image = palette[rng.integers(0, colours, (height, width))]
    else:
        image = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    alpha = draw(st.sampled_from(["opaque", "binary", "partial", "clear"]))
    if alpha == "opaque":
        image[..., 3] = 255
    elif alpha == "binary":
        image[..., 3] = np.where(image[..., 3] > 127, 255, 0)
    elif alpha == "clear":
        image[..., 3] = 0
    return image


@st.composite
def image_files(draw) -> tuple[Path, tuple[int, int]]:
    """An image file in one of :data:`MODES`, written to a temporary folder."""
    rgba = draw(pixels())
    mode = draw(st.sampled_from(sorted(MODES)))
    image = Image.fromarray(rgba, "RGBA")
    if mode == "I;16":
        image = Image.fromarray(rgba[..., 0].astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=MODES[mode])
    folder = Path(tempfile.mkdtemp(prefix="gpupix-prop-"))
    path = folder / f"image.{MODES[mode].lower()}"
    path.write_bytes(buffer.getvalue())
    return path, rgba.shape[:2]


# --- ops: arrays in, arrays out -----------------------------------------------------------------

@dataclass(frozen=True)
class OpCase:
    params: st.SearchStrategy[dict[str, Any]]
    call: Callable[[np.ndarray, dict[str, Any], CpuBackend], Any]
    check: Callable[[np.ndarray, dict[str, Any], Any], None]
    max_refused: float = 0.2


def _check_quantize(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    palette, indices = np.asarray(result.palette), np.asarray(result.indices)
    assert palette.dtype == np.uint8 and palette.ndim == 2 and palette.shape[1] == 3
    assert 1 <= palette.shape[0] <= params["k"]
    assert indices.dtype == np.uint8 and indices.shape == rgb.shape[:2]
    assert int(indices.max()) < palette.shape[0]


def _check_colour_round_trip(rgb: np.ndarray, params: dict[str, Any], back: Any) -> None:
    back = np.asarray(back)
    assert back.shape == rgb.shape and np.issubdtype(back.dtype, np.floating)
    assert np.abs(back - rgb).max() < 0.5  # each space maps back to the same sRGB


def _check_metrics(rgb: np.ndarray, params: dict[str, Any], values: Any) -> None:
    assert set(values) == set(params["names"])
    for name, value in values.items():
        assert isinstance(value, float) and not np.isnan(value), (name, value)
    if "ssim" in values:
        assert -1.0 <= values["ssim"] <= 1.0 + 1e-9
    if "psnr" in values:  # against an independent computation
        other = rgb if params["seed"] == 0 else _noisy(rgb, params["seed"])
        mse = float(((rgb.astype(np.float64) - other) ** 2).mean())
        expected = np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse)
        assert values["psnr"] == pytest.approx(expected, rel=1e-6), (values["psnr"], expected)


def _noisy(rgb: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-20, 21, rgb.shape)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _check_denoised(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    image = np.asarray(result.image)
    assert image.shape == rgb.shape and image.dtype == np.float32
    assert np.isfinite(image).all() and np.isfinite(result.sigma)


def _check_rgba_palette(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    colours, alpha = np.asarray(result.colours), np.asarray(result.alpha)
    indices = np.asarray(result.indices)
    assert colours.dtype == alpha.dtype == indices.dtype == np.uint8
    assert colours.ndim == 2 and colours.shape[1] == 3 and alpha.shape == colours.shape[:1]
    assert 1 <= colours.shape[0] <= params["k"] and indices.shape == rgb.shape[:2]
    assert int(indices.max()) < colours.shape[0]


def _check_corrupt(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    damaged, missing = (np.asarray(x) for x in result)
    channels = 4 if params["mark"] == "transparent" else 3
    assert damaged.dtype == np.uint8 and damaged.shape == (*rgb.shape[:2], channels)
    assert missing.dtype == bool and missing.shape == rgb.shape[:2]


def _inpaint_call(rgb: np.ndarray, params: dict[str, Any], backend: CpuBackend) -> Any:
    missing = np.random.default_rng(params["seed"]).random(rgb.shape[:2]) < params["fraction"]
    if missing.all():  # a stated precondition, not a crash: nothing to learn from
        with pytest.raises(ValueError, match="no known pixel"):
            inpaint(rgb, missing, backend=backend)
        missing[0, 0] = False
    k = params["k"]
    if params["method"] == "smooth":  # k numbers its energies
        k = None if k > len(ENERGIES) else k
    filled = inpaint(rgb, missing, backend=backend, k=k, method=params["method"],
                     weights=params["weights"], tile=params["tile"])
    return filled, missing


def _check_inpaint(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    filled, missing = np.asarray(result[0]), result[1]
    assert filled.dtype == np.uint8 and filled.shape == rgb.shape
    assert (filled[~missing] == rgb[~missing]).all()  # known pixels are never changed


def _dither_call(rgb: np.ndarray, params: dict[str, Any], backend: CpuBackend) -> Any:
    rng = np.random.default_rng(params["seed"])
    palette = rng.integers(0, 256, (params["entries"], 3), dtype=np.uint8)
    return floyd_steinberg(rgb, palette, strength=params["strength"]), params["entries"]


def _check_dither(rgb: np.ndarray, params: dict[str, Any], result: Any) -> None:
    indices, entries = np.asarray(result[0]), result[1]
    assert indices.dtype == np.uint8 and indices.shape == rgb.shape[:2]
    assert int(indices.max()) < entries


ODD_PATCH = st.sampled_from([1, 3, 5])
OPS: dict[str, OpCase] = {
    "color round trip": OpCase(
        params=st.fixed_dictionaries({"space": st.sampled_from(SPACES)}),
        call=lambda rgb, p, backend: space_to_rgb(rgb_to_space(rgb, p["space"]), p["space"]),
        check=_check_colour_round_trip,
    ),
    "metrics": OpCase(
        params=st.fixed_dictionaries({
            "names": st.lists(st.sampled_from(METRICS), min_size=1, unique=True),
            "seed": st.integers(0, 3),  # 0: identical images
        }),
        call=lambda rgb, p, backend: compute_metrics(
            p["names"], rgb, rgb if p["seed"] == 0 else _noisy(rgb, p["seed"])),
        check=_check_metrics,
    ),
    "quantize": OpCase(
        params=st.fixed_dictionaries({
            "k": st.integers(1, 256),
            "color_space": st.sampled_from(SPACES),
            "bits": st.integers(1, 8),
        }),
        call=lambda rgb, p, backend: quantize(rgb, backend=backend, **p),
        check=_check_quantize,
    ),
    "denoise self, window search": OpCase(
        params=st.fixed_dictionaries({
            "patch": ODD_PATCH, "window": st.sampled_from([3, 5, 7]),
            "components": st.integers(1, 8), "tile": st.integers(16, 40),
            "sigma": st.one_of(st.none(), st.floats(1, 60))}),
        call=lambda rgb, p, backend: denoise_self(rgb, **p),
        check=_check_denoised,
    ),
    "denoise self, global search": OpCase(
        params=st.fixed_dictionaries({
            "patch": ODD_PATCH, "k": st.integers(1, 40), "components": st.integers(1, 8),
            "tile": st.integers(16, 40), "sigma": st.one_of(st.none(), st.floats(1, 60)),
        }).flatmap(lambda p: st.integers(1, p["patch"]).map(lambda s: {**p, "stride": s})),
        call=lambda rgb, p, backend: denoise_self_knn(rgb, backend=backend, **p),
        check=_check_denoised,
    ),
    "quantize rgba": OpCase(
        # bits 7 and 8 overflow the int32 bin codes of 4 channels (a 2**32-bin table): the
        # op is only called with its default, 5
        params=st.fixed_dictionaries({"k": st.integers(1, 256), "bits": st.integers(1, 6),
                                      "alpha": st.integers(0, 255)}),
        call=lambda rgb, p, backend: quantize_rgba(
            np.dstack([rgb, np.full(rgb.shape[:2], p["alpha"], np.uint8)]), k=p["k"],
            bits=p["bits"], backend=backend),
        check=_check_rgba_palette,
    ),
    "corrupt": OpCase(
        params=st.fixed_dictionaries({
            "drop": st.floats(0, 0.99), "holes": st.integers(0, 3),
            "hole_size": st.integers(1, 30),
            "mark": st.sampled_from(["magenta", "black", "transparent"])}),
        call=lambda rgb, p, backend: corrupt(rgb, backend=backend,
                                             rng=np.random.default_rng(0), **p),
        check=_check_corrupt,
    ),
    "inpaint": OpCase(
        params=st.fixed_dictionaries({
            "fraction": st.sampled_from([0.0, 0.1, 0.5, 0.95, 1.0]), "seed": st.integers(0, 9),
            "k": st.integers(1, 16), "method": st.sampled_from(METHODS),
            "weights": st.sampled_from(["uniform", "distance"]),
            "tile": st.integers(16, 40)}),
        call=_inpaint_call,
        check=_check_inpaint,
    ),
    "dither": OpCase(
        params=st.fixed_dictionaries({"entries": st.integers(1, 256), "seed": st.integers(0, 9),
                                      "strength": st.floats(0, 1)}),
        call=_dither_call,
        check=_check_dither,
    ),
}


# Refusals are allowed (a GpupixError with a reason), but a case refused more often than
# its ``max_refused`` is not tested: the property would hold vacuously.
OUTCOMES: Counter[str] = Counter()
CASE_SETTINGS = settings(PROPERTY_SETTINGS,
                         max_examples=max(8, PROPERTY_SETTINGS.max_examples // 3))


def assert_mostly_run(name: str, max_refused: float) -> None:
    done, refused = OUTCOMES["done"], OUTCOMES["refused"]
    assert done > 0, f"{name}: every example refused"
    assert refused <= max_refused * (done + refused), \
        f"{name}: {refused} of {done + refused} examples refused"


@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_on_any_image(name):
    OUTCOMES.clear()
    CASE_SETTINGS(given(rgba=pixels(), data=st.data())(
        lambda rgba, data: ops_on_any_image(name, rgba, data)))()
    assert_mostly_run(name, OPS[name].max_refused)


def ops_on_any_image(name, rgba, data):
    case = OPS[name]
    params = data.draw(case.params, label="params")
    rgb = np.ascontiguousarray(rgba[..., :3])
    try:
        result = case.call(rgb, params, CpuBackend(n_threads=1))
    except GpupixError as exc:
        event(f"{name}: refused ({type(exc).__name__})")
        OUTCOMES["refused"] += 1
        return
    event(f"{name}: done")
    OUTCOMES["done"] += 1
    case.check(rgb, params, result)


# --- jobs: a file in, files out -----------------------------------------------------------------

@dataclass(frozen=True)
class JobCase:
    section: st.SearchStrategy[dict[str, Any]]
    check: Callable[[list[bytes], tuple[int, int], dict[str, Any]], None]
    max_refused: float = 0.2


def _check_palette_png(outputs: list[bytes], shape: tuple[int, int], section: dict) -> None:
    assert len(outputs) == 1
    with Image.open(io.BytesIO(outputs[0])) as image:
        assert image.format == "PNG" and image.mode == "P"
        assert image.size == (shape[1], shape[0])
        assert len(np.unique(np.asarray(image))) <= section["k"]


def _check_denoise_pngs(outputs: list[bytes], shape: tuple[int, int], section: dict) -> None:
    expected = 1 + ("noise" in section) + bool(section.get("difference"))
    assert len(outputs) == expected
    for data in outputs:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (shape[1], shape[0])


@st.composite
def inpaint_sections(draw) -> dict[str, Any]:
    method = draw(st.sampled_from(METHODS))
    top = len(ENERGIES) if method == "smooth" else 64  # smooth's k numbers its energies
    return {"mask": draw(st.sampled_from(["alpha", "key_color", "auto"])), "method": method,
            "k": draw(st.one_of(st.just("auto"), st.integers(1, top))),
            "tile": draw(st.integers(16, 64))}


@st.composite
def denoise_sections(draw) -> dict[str, Any]:
    section: dict[str, Any] = {"method": "self",
                               "search": draw(st.sampled_from(["window", "global"])),
                               "patch": draw(ODD_PATCH), "tile": draw(st.integers(16, 40))}
    if section["search"] == "global":  # every pixel must be in some patch
        section["stride"] = draw(st.integers(1, section["patch"]))
    if draw(st.booleans()):
        section["noise"] = {"kind": draw(st.sampled_from(["gaussian", "uniform",
                                                          "salt_pepper"]))}
        section["difference"] = draw(st.booleans())
    return section


def _check_pngs_of(count: int) -> Callable[[list[bytes], tuple[int, int], dict], None]:
    """``count`` PNG outputs, each the input's size."""
    def check(outputs: list[bytes], shape: tuple[int, int], section: dict) -> None:
        assert len(outputs) == count
        for data in outputs:
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "PNG" and image.size == (shape[1], shape[0])

    return check


JOBS: dict[str, JobCase] = {
    "corrupt": JobCase(
        section=st.fixed_dictionaries({
            "drop": st.floats(0, 0.99),
            "noise": st.sampled_from(["none", "gaussian", "uniform", "salt_pepper"]),
            "mark": st.sampled_from(["magenta", "black", "transparent"])}),
        check=_check_pngs_of(2),  # the damaged image and its mask
    ),
    "inpaint": JobCase(
        section=inpaint_sections(),
        check=_check_pngs_of(1),
        # mask: alpha is refused, by design, on files without transparency (RGB, L, P, 1)
        max_refused=0.7,
    ),
    "denoise": JobCase(section=denoise_sections(), check=_check_denoise_pngs),
    "quantize": JobCase(
        section=st.fixed_dictionaries({
            "k": st.integers(2, 256),
            "color_space": st.sampled_from(SPACES),
        }),
        check=_check_palette_png,
    ),
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_jobs_on_any_image_file(name):
    OUTCOMES.clear()
    CASE_SETTINGS(given(file=image_files(), data=st.data(),
                        metrics=st.sampled_from([(), ("psnr", "rmse", "delta_e", "ssim")]))(
        lambda file, data, metrics: jobs_on_any_image_file(name, file, data, metrics)))()
    assert_mostly_run(name, JOBS[name].max_refused)


def jobs_on_any_image_file(name, file, data, metrics):
    case = JOBS[name]
    section = data.draw(case.section, label="section")
    config = validate_config({"job": name, "input": {"paths": ["unused"]},
                              "output": {"dir": "unused"}, "backend": "cpu",
                              "metrics": list(metrics), name: section})
    job = make_job(config)
    path, shape = file
    try:
        image = decode(path)
        assert image.pixels.shape[:2] == shape and image.pixels.dtype == np.uint8
        processed = job.process(None, image, CpuBackend(n_threads=1))
        outputs = job.encode(processed).files
    except GpupixError as exc:  # refused with a reason: allowed, if not too often
        event(f"{name}: refused ({type(exc).__name__})")
        OUTCOMES["refused"] += 1
        return
    finally:
        path.unlink()
        path.parent.rmdir()
    event(f"{name}: done")
    OUTCOMES["done"] += 1
    case.check(outputs, shape, section)
