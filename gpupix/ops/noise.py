"""Noise models: Gaussian, uniform (the classic ``randint(0, 500)`` noise) and salt-and-pepper.

The random draws are made on the host with a :class:`numpy.random.Generator`, so a seed gives
the same noise on every backend, then moved to the device where they are applied. Applying
is written against the array API (tested under ``array_api_strict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gpupix.backends.base import Array, Backend
from gpupix.ops import _xp

NOISE_KINDS = ("gaussian", "uniform", "salt_pepper")


@dataclass(frozen=True)
class NoiseModel:
    """How clean images are corrupted.

    Parameters
    ----------
    kind : {"gaussian", "uniform", "salt_pepper"}, default="gaussian"
        ``gaussian`` adds N(0, sigma^2) per value; ``uniform`` adds integers drawn uniformly
        from ``low..high-1`` (as ``randint(0, 500)``); ``salt_pepper`` sets a fraction
        ``amount`` of the pixels (all channels) to 0 or 255 with equal odds.
    sigma : float, default=25
    low, high : int, default=0, 500
    amount : float, default=0.05
    clip : bool, default=True
        Clip the result to 0..255, as any image file does. The seed does not clip its
        uniform noise (values reach 754); ``clip=False`` reproduces that.
    """

    kind: str = "gaussian"
    sigma: float = 25.0
    low: int = 0
    high: int = 500
    amount: float = 0.05
    clip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"noise kind {self.kind!r} is not one of {', '.join(NOISE_KINDS)}")

    def describe(self) -> dict[str, Any]:
        """The parameters that matter for this kind (for model metadata and summaries)."""
        keep = {"gaussian": ("sigma",), "uniform": ("low", "high"),
                "salt_pepper": ("amount",)}[self.kind]
        full = asdict(self)
        return {"kind": self.kind, **{key: full[key] for key in keep}, "clip": self.clip}

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Host draws for an image of ``shape`` (H, W, C) or rows (n, D).

        Returns float32 additive noise, or for ``salt_pepper`` int8 codes of shape
        ``shape[:-1]`` (0 keep, 1 salt, 2 pepper) shared by a pixel's channels.
        """
        if self.kind == "gaussian":
            return rng.normal(0.0, self.sigma, size=shape).astype(np.float32)
        if self.kind == "uniform":
            return rng.integers(self.low, self.high, size=shape).astype(np.float32)
        draws = rng.random(size=shape[:-1])
        codes = np.zeros(shape[:-1], np.int8)
        codes[draws < self.amount / 2] = 1
        codes[(draws >= self.amount / 2) & (draws < self.amount)] = 2
        return codes

    def apply(self, clean: Array, rng: np.random.Generator, backend: Backend) -> Array:
        """Noisy float32 copy of ``clean`` (values 0..255, last axis channels)."""
        return apply_noise(clean, backend.to_device(self.sample(tuple(clean.shape), rng)),
                           kind=self.kind, clip=self.clip)


def apply_noise(clean: Array, draws: Array, *, kind: str, clip: bool = True) -> Array:
    """Combine ``clean`` with draws from :meth:`NoiseModel.sample` (already on the device).

    Parameters
    ----------
    clean : (..., C) array of 0..255 values
    draws : array
        Additive float32 noise of ``clean``'s shape, or int8 salt-and-pepper codes of shape
        ``clean.shape[:-1]``.
    kind : str
    clip : bool, default=True

    Returns
    -------
    (..., C) float32 array
    """
    from gpupix.ops._xp import array_namespace

    xp = array_namespace(clean)
    values = xp.astype(clean, xp.float32)
    if kind == "salt_pepper":
        codes = draws[..., None]
        salt = xp.full_like(values, 255.0)
        values = xp.where(codes == 1, salt, xp.where(codes == 2, xp.zeros_like(values), values))
        return values
    values = values + xp.astype(draws, xp.float32)
    if clip:
        values = _xp.clip(values, 0.0, 255.0)
    return values
