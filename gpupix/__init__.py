"""gpupix: classical machine learning on pixels, batch by batch, on a GPU or the CPU.

>>> import gpupix
>>> q = gpupix.quantize(rgb, k=16)          # doctest: +SKIP
>>> r = gpupix.inpaint(rgb, mask)           # doctest: +SKIP

Importing gpupix is light: no scikit-learn, SciPy, CuPy, matplotlib or Dask is imported until
a function that needs them runs (the functions below load on first use).
"""

from __future__ import annotations

from typing import Any

from gpupix.errors import ConfigError, GpupixError, ImageError

__version__ = "0.1.0"

__all__ = ["__version__", "ConfigError", "GpupixError", "ImageError", "quantize", "inpaint",
           "denoise", "fit_denoiser", "sweep", "run", "QuantizeResult", "ImageResult"]
_LAZY = frozenset(__all__[4:])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from gpupix import api

        return getattr(api, name)
    raise AttributeError(f"module 'gpupix' has no attribute {name!r}")
