"""Image quality metrics on any array API: PSNR, RMSE, mean CIEDE2000 and SSIM.

Images are ``(H, W)`` or ``(H, W, C)`` arrays of 0..255 values. SSIM matches scikit-image's
``structural_similarity(data_range=255, channel_axis=-1)`` defaults (7x7 uniform window,
sample covariance, border of half a window left out), which the tests use as the oracle.
"""

from __future__ import annotations

import math
from typing import Any

from gpupix.ops._xp import array_namespace
from gpupix.ops.color import ciede2000, rgb_to_lab

METRICS = ("psnr", "rmse", "delta_e", "ssim")


def _pair(reference: Any, result: Any) -> tuple[Any, Any, Any]:
    xp = array_namespace(reference, result)
    if reference.shape != result.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {result.shape}")
    return xp, xp.astype(reference, xp.float64), xp.astype(result, xp.float64)


def mse(reference: Any, result: Any, mask: Any | None = None) -> float:
    """Mean squared error; with ``mask`` ((H, W) bool), over the masked pixels only."""
    xp, a, b = _pair(reference, result)
    squared = (a - b) ** 2
    if mask is None:
        return float(xp.mean(squared))
    if a.ndim == 3:
        squared = xp.mean(squared, axis=-1)
    count = xp.sum(xp.astype(mask, xp.float64))
    return float(xp.sum(xp.where(mask, squared, xp.zeros_like(squared))) / count)


def rmse(reference: Any, result: Any, mask: Any | None = None) -> float:
    return math.sqrt(mse(reference, result, mask))


def psnr(reference: Any, result: Any, mask: Any | None = None, *, data_range: float = 255.0
         ) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    error = mse(reference, result, mask)
    return math.inf if error == 0 else 10.0 * math.log10(data_range**2 / error)


def delta_e(reference: Any, result: Any) -> float:
    """Mean CIEDE2000 difference of two sRGB ``(H, W, 3)`` images (greyscale is expanded)."""
    xp, a, b = _pair(reference, result)
    if a.ndim == 2:
        a, b = xp.stack([a] * 3, axis=-1), xp.stack([b] * 3, axis=-1)
    return float(xp.mean(ciede2000(rgb_to_lab(a[..., :3]), rgb_to_lab(b[..., :3]))))


def _box_mean(x: Any, window: int) -> Any:
    """Mean over every full ``window x window`` box of the last two axes (valid region)."""
    xp = array_namespace(x)
    for axis in (-2, -1):
        total = xp.cumulative_sum(x, axis=axis, include_initial=True)
        n = total.shape[axis]
        if axis == -2:
            x = total[..., window:n, :] - total[..., 0 : n - window, :]
        else:
            x = total[..., window:n] - total[..., 0 : n - window]
    return x / (window * window)


def ssim(reference: Any, result: Any, *, data_range: float = 255.0, window: int = 7) -> float:
    """Mean structural similarity, averaged over channels."""
    xp, a, b = _pair(reference, result)
    if a.ndim == 3:  # channels first, so the window runs over the last two axes
        a, b = xp.permute_dims(a, (2, 0, 1)), xp.permute_dims(b, (2, 0, 1))
    window = min(window, a.shape[-1], a.shape[-2])
    window -= 1 - window % 2  # odd, as scikit-image requires
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = window * window
    cov_norm = n / (n - 1) if n > 1 else 1.0
    mu_a, mu_b = _box_mean(a, window), _box_mean(b, window)
    var_a = cov_norm * (_box_mean(a * a, window) - mu_a**2)
    var_b = cov_norm * (_box_mean(b * b, window) - mu_b**2)
    cov = cov_norm * (_box_mean(a * b, window) - mu_a * mu_b)
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    s = numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(xp.mean(s))


def compute_metrics(names: tuple[str, ...] | list[str], reference: Any, result: Any,
                    mask: Any | None = None) -> dict[str, float]:
    """The requested metrics of ``result`` against ``reference`` (RGB channels only)."""
    functions = {
        "psnr": lambda: psnr(reference, result, mask),
        "rmse": lambda: rmse(reference, result, mask),
        "delta_e": lambda: delta_e(reference, result),
        "ssim": lambda: ssim(reference, result),
    }
    return {name: functions[name]() for name in names}
