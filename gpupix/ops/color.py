"""Colour conversions (sRGB, linear RGB, OKLab, CIELAB D65) and CIEDE2000, on any array API.

Values are float32 ``(..., 3)`` arrays; sRGB is in 0..255. Lab-type outputs use their usual
scales (CIELAB L in 0..100; OKLab L in 0..1).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from gpupix.ops._xp import array_namespace, clip, constant, device

ColorSpace = Literal["rgb", "lab", "oklab", "rgb_lab"]

# rgb_lab: sRGB coordinates plus CIELAB ones scaled so that squared distances add
# HYBRID_LAB_WEIGHT x the CIELAB distance to the sRGB one. K-means there keeps the PSNR of
# fitting in sRGB while moving its errors to where CIEDE2000 minds them less.
HYBRID_LAB_WEIGHT = 0.5

_LINEAR_TO_LMS = [
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
]
_LMS_TO_OKLAB = [
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
]
_OKLAB_TO_LMS = [
    [1.0, 0.3963377774, 0.2158037573],
    [1.0, -0.1055613458, -0.0638541728],
    [1.0, -0.0894841775, -1.2914855480],
]
_LMS_TO_LINEAR = [
    [4.0767416621, -3.3077115913, 0.2309699292],
    [-1.2684380046, 2.6097574011, -0.3413193965],
    [-0.0041960863, -0.7034186147, 1.7076147010],
]
_LINEAR_TO_XYZ = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
]
_XYZ_TO_LINEAR = [
    [3.24048134, -1.53715152, -0.49853633],
    [-0.96925495, 1.87599, 0.04155593],
    [0.05564664, -0.20404134, 1.05731107],
]
_WHITE_D65 = [0.95047, 1.0, 1.08883]


def _matmul3(x: Any, matrix: list[list[float]]) -> Any:
    """``x @ matrix.T`` over the last axis, as nine scaled adds: a BLAS matmul with an inner
    dimension of 3 is slower than the elementwise passes (and spins threads under load)."""
    xp = array_namespace(x)
    columns = [x[..., 0], x[..., 1], x[..., 2]]
    return xp.stack([columns[0] * row[0] + columns[1] * row[1] + columns[2] * row[2]
                     for row in matrix], axis=-1)


def _as_float(x: Any) -> Any:
    xp = array_namespace(x)
    return x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, xp.float32)


def srgb_to_linear(rgb: Any) -> Any:
    """sRGB 0..255 -> linear RGB 0..1 (float32; integer input through a 256-entry table)."""
    xp = array_namespace(rgb)
    if xp.isdtype(rgb.dtype, "integral"):
        table = _srgb_to_linear_float(xp.arange(256, dtype=xp.float64, device=device(rgb)))
        flat = xp.reshape(xp.astype(rgb, xp.int64), (-1,))
        return xp.reshape(xp.astype(xp.take(table, flat), xp.float32), rgb.shape)
    return _srgb_to_linear_float(_as_float(rgb))


def _srgb_to_linear_float(rgb: Any) -> Any:
    xp = array_namespace(rgb)
    c = rgb / 255.0
    return xp.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: Any) -> Any:
    """Linear RGB 0..1 -> sRGB 0..255 (clipped to the gamut, not rounded)."""
    xp = array_namespace(linear)
    c = clip(linear, 0.0, 1.0)
    return 255.0 * xp.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def rgb_to_oklab(rgb: Any) -> Any:
    """sRGB 0..255 -> OKLab (Ottosson 2020)."""
    lms = clip(_matmul3(srgb_to_linear(rgb), _LINEAR_TO_LMS), 0.0, None)
    return _matmul3(lms ** (1 / 3), _LMS_TO_OKLAB)


def oklab_to_rgb(oklab: Any) -> Any:
    """OKLab -> sRGB 0..255 (clipped)."""
    lms = _matmul3(_as_float(oklab), _OKLAB_TO_LMS) ** 3
    return linear_to_srgb(_matmul3(lms, _LMS_TO_LINEAR))


def _lab_f(t: Any) -> Any:
    xp = array_namespace(t)
    delta = 6 / 29
    cube_root = clip(t, delta**3, None) ** (1 / 3)
    return xp.where(t > delta**3, cube_root, t / (3 * delta**2) + 4 / 29)


def _lab_f_inverse(t: Any) -> Any:
    xp = array_namespace(t)
    delta = 6 / 29
    return xp.where(t > delta, t**3, 3 * delta**2 * (t - 4 / 29))


def rgb_to_lab(rgb: Any) -> Any:
    """sRGB 0..255 -> CIELAB (D65, 2 degree observer), as scikit-image's ``rgb2lab``."""
    xp = array_namespace(rgb)
    xyz = _matmul3(srgb_to_linear(rgb), _LINEAR_TO_XYZ) / constant(xp, rgb, _WHITE_D65)
    f = _lab_f(xyz)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: Any) -> Any:
    """CIELAB (D65) -> sRGB 0..255 (clipped)."""
    xp = array_namespace(lab)
    lab = _as_float(lab)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = xp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = _lab_f_inverse(f) * constant(xp, lab, _WHITE_D65, lab.dtype)
    return linear_to_srgb(_matmul3(xyz, _XYZ_TO_LINEAR))


_FORWARD = {"lab": rgb_to_lab, "oklab": rgb_to_oklab}
_BACKWARD = {"lab": lab_to_rgb, "oklab": oklab_to_rgb}


def rgb_to_space(rgb: Any, space: ColorSpace) -> Any:
    """sRGB 0..255 ``(..., 3)`` -> ``space`` (``(..., 6)`` for rgb_lab); rgb is made float."""
    if space == "rgb":
        return _as_float(rgb)
    if space == "rgb_lab":
        xp = array_namespace(rgb)
        rgb = _as_float(rgb)
        return xp.concat([rgb, rgb_to_lab(rgb) * math.sqrt(HYBRID_LAB_WEIGHT)], axis=-1)
    return _FORWARD[space](rgb)


def space_to_rgb(values: Any, space: ColorSpace) -> Any:
    """``space`` -> sRGB 0..255 float, clipped to the gamut."""
    if space in ("rgb", "rgb_lab"):  # rgb_lab keeps sRGB in its first three coordinates
        return clip(_as_float(values[..., :3]), 0.0, 255.0)
    return _BACKWARD[space](values)


def ciede2000(lab1: Any, lab2: Any) -> Any:
    """CIEDE2000 colour difference of two CIELAB arrays ``(..., 3)`` (kL = kC = kH = 1)."""
    xp = array_namespace(lab1, lab2)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (xp.sqrt(a1**2 + b1**2) + xp.sqrt(a2**2 + b2**2)) / 2
    g = 0.5 * (1 - xp.sqrt(_seventh(c_mean) / (_seventh(c_mean) + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = xp.sqrt(a1p**2 + b1**2), xp.sqrt(a2p**2 + b2**2)
    h1p, h2p = _hue(xp, b1, a1p), _hue(xp, b2, a2p)
    chroma_zero = (c1p * c2p) == 0

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = xp.where(dh > math.pi, dh - 2 * math.pi, dh)
    dh = xp.where(dh < -math.pi, dh + 2 * math.pi, dh)
    dh = xp.where(chroma_zero, xp.zeros_like(dh), dh)
    dH = 2 * xp.sqrt(c1p * c2p) * xp.sin(dh / 2)

    L_mean = (L1 + L2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = xp.where(
        xp.abs(h1p - h2p) > math.pi,
        xp.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2, (h_sum - 2 * math.pi) / 2),
        h_sum / 2,
    )
    h_mean = xp.where(chroma_zero, h_sum, h_mean)
    t = (
        1
        - 0.17 * xp.cos(h_mean - math.radians(30))
        + 0.24 * xp.cos(2 * h_mean)
        + 0.32 * xp.cos(3 * h_mean + math.radians(6))
        - 0.20 * xp.cos(4 * h_mean - math.radians(63))
    )
    d_theta = math.radians(30) * xp.exp(-(((h_mean - math.radians(275)) / math.radians(25)) ** 2))
    r_c = 2 * xp.sqrt(_seventh(cp_mean) / (_seventh(cp_mean) + 25.0**7))
    s_l = 1 + 0.015 * (L_mean - 50) ** 2 / xp.sqrt(20 + (L_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -xp.sin(2 * d_theta) * r_c
    term_l, term_c, term_h = dL / s_l, dC / s_c, dH / s_h
    return xp.sqrt(term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h)


def _seventh(x: Any) -> Any:
    """x**7 by multiplications (a float power is a slow ``pow`` call per element)."""
    square = x * x
    return square * square * square * x


def _hue(xp: Any, b: Any, a: Any) -> Any:
    """Hue angle in [0, 2 pi): atan2 shifted by a select instead of a float modulo."""
    angle = xp.atan2(b, a)
    return xp.where(angle < 0, angle + 2 * math.pi, angle)
