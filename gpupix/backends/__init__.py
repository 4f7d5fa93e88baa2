"""Backend registry: pick ``cpu``, ``cuda`` or ``auto`` by name."""

from __future__ import annotations

import logging

from gpupix.backends.base import Array, Backend
from gpupix.backends.cpu import CpuBackend
from gpupix.backends.cuda import CudaBackend
from gpupix.errors import BackendUnavailableError, ConfigError

__all__ = ["Array", "Backend", "CpuBackend", "CudaBackend", "BACKENDS", "get_backend",
           "backend_status"]

log = logging.getLogger(__name__)

BACKENDS: dict[str, type] = {"cpu": CpuBackend, "cuda": CudaBackend}


def backend_status() -> dict[str, str | None]:
    """Each backend's name and why it cannot run (None when it can)."""
    return {name: cls.unavailable_reason() for name, cls in BACKENDS.items()}


def get_backend(name: str = "auto") -> Backend:
    """Return a ready backend. ``auto`` is cuda when usable, else cpu (and logs why)."""
    if name == "auto":
        reason = CudaBackend.unavailable_reason()
        if reason is None:
            return CudaBackend()
        log.info("backend auto -> cpu: %s", reason)
        return CpuBackend()
    if name not in BACKENDS:
        raise ConfigError(f"backend: {name!r} is not one of auto, cpu, cuda")
    cls = BACKENDS[name]
    reason = cls.unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    return cls()
