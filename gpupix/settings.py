"""The building blocks of a job file: the sections every job shares, and the base of each
job's own section (:class:`Section`). Job modules build on this; :mod:`gpupix.config`
assembles the whole job file from it and the job registry.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SHOWN_CHARS = 80          # of a value echoed in an error message


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters: never echo a huge value back.

    Built with :mod:`reprlib`, which stops at a few items and levels, so describing a large
    (or deeply shared) structure costs nothing whatever its size.
    """
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxstring = SHOWN_CHARS
_SHORT_REPR.maxother = SHOWN_CHARS
_SHORT_REPR.maxlong = SHOWN_CHARS


MetricName = Literal["psnr", "rmse", "delta_e", "ssim"]


class Section(BaseModel):
    """Frozen, and unknown keys are errors: a typo must not be silently ignored.

    A job's section names its fields that hold paths (``path_fields``: resolved against the
    job file's folder, ``~`` and ``$VARS`` expanded) and checks that they exist
    (:meth:`check_paths`), so ``gpupix validate`` refuses what ``gpupix run`` would.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    path_fields: ClassVar[tuple[str, ...]] = ()

    def resolve_paths(self, resolve: Callable[[str, str], str], name: str) -> Self:
        """A copy with every path field resolved; ``resolve(value, field_name)``."""
        update = {key: resolve(getattr(self, key), f"{name}.{key}")
                  for key in self.path_fields if getattr(self, key) is not None}
        return self.model_copy(update=update) if update else self

    def check_paths(self, name: str) -> None:
        """Raise ConfigError (naming ``name.field``) for a path that cannot be used."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # the OS cannot take a NUL in a path: refused here, not as a ValueError from os.stat
        values = value if isinstance(value, list | tuple) else (value,)
        if any(isinstance(v, str) and "\0" in v for v in values):
            raise ValueError("holds a NUL character, which no path or setting can")
        return value


class InputConfig(Section):
    paths: tuple[str, ...] = Field(min_length=1)
    recursive: bool = False


class OutputConfig(Section):
    dir: str
    overwrite: bool = False
    # png; webp (lossless: palette images stay small); jpeg (not for quantize or corrupt,
    # whose exact colours it would blur) at ``quality``
    format: Literal["png", "webp", "jpeg"] = "png"
    quality: int = Field(90, ge=1, le=100)


class BatchConfig(Section):
    size: int = Field(16, ge=1, le=4096)
    prefetch: int = Field(2, ge=0, le=64)
    io_workers: int = Field(2, ge=1, le=64)
    # images computed at once by the local executor; None: one per usable core on cpu, one
    # on cuda
    compute_workers: int | None = Field(None, ge=1, le=1024)
    # where those images are computed: threads of this process, or worker processes (each
    # reads, computes and writes its image; no shared interpreter lock between them). auto:
    # processes on cpu (Linux) for a folder of at least 4 images per worker, threads
    # otherwise (and always on cuda: one device, one process)
    pool: Literal["auto", "threads", "processes"] = "auto"
    # decoded pixels (bytes) held ahead of and in the compute stage; peak memory is about
    # this budget plus one image per compute thread. An image larger than it runs alone.
    read_ahead_bytes: int = Field(1 << 30, ge=1 << 20, le=1 << 40)


class QualityTarget(Section):
    """Exactly one of ``psnr`` (dB, higher is better) or ``delta_e`` (mean CIEDE2000, lower)."""

    psnr: float | None = Field(None, gt=0, le=100)
    delta_e: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="after")
    def _exactly_one(self) -> QualityTarget:
        if (self.psnr is None) == (self.delta_e is None):
            raise ValueError("give exactly one of psnr or delta_e, e.g. {psnr: 38}")
        return self

    @property
    def metric(self) -> Literal["psnr", "delta_e"]:
        return "psnr" if self.psnr is not None else "delta_e"

    @property
    def value(self) -> float:
        return self.psnr if self.psnr is not None else self.delta_e  # type: ignore[return-value]

    def met_by(self, quality: float) -> bool:
        """True when ``quality`` (of this target's metric) is at least as good as the target."""
        return quality >= self.value if self.metric == "psnr" else quality <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {'>=' if self.metric == 'psnr' else '<='} {self.value:g}"


class NoiseConfig(Section):
    """A noise model (gpupix/ops/noise.py): what fit_denoiser trains against, or what
    denoise simulates on clean inputs to score itself."""

    kind: Literal["gaussian", "uniform", "salt_pepper"] = "gaussian"
    sigma: float = Field(25.0, gt=0, le=255)
    low: int = Field(0, ge=-255, le=1000)
    high: int = Field(500, ge=-254, le=1001)
    amount: float = Field(0.05, gt=0, le=1)
    clip: bool = True

    @model_validator(mode="after")
    def _low_below_high(self) -> NoiseConfig:
        if self.low >= self.high:
            raise ValueError(f"noise.low ({self.low}) must be below noise.high ({self.high}); "
                             "uniform noise is drawn from low..high-1")
        return self


def odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError("must be odd (a patch or window has a centre pixel), "
                         f"got {shown(value)}")
    return value


class ExecutorConfig(Section):
    """Where the per-image work runs: in this process, or on a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    address: str | None = None  # dask: tcp://scheduler:8786; None starts a local cluster
    n_workers: int | None = Field(None, ge=1, le=4096)  # for a cluster gpupix starts itself
    chunk: int = Field(64, ge=1, le=1_000_000)  # at most this many images per task
    retries: int = Field(2, ge=0, le=100)  # reruns of a task that failed or lost its worker

    @model_validator(mode="after")
    def _dask_only_settings(self) -> ExecutorConfig:
        if self.kind == "local" and (self.address is not None or self.n_workers is not None):
            raise ValueError("address and n_workers are for kind: dask; kind is 'local'")
        if self.address is not None and "://" not in self.address:
            raise ValueError(f"address {shown(self.address)} needs a scheme, e.g. "
                             "tcp://scheduler:8786 (or null to start a local cluster)")
        if self.address is not None and self.n_workers is not None:
            raise ValueError("n_workers is for a cluster gpupix starts itself; the cluster "
                             f"at {shown(self.address)} has its own workers")
        return self
