"""The errors gpupix raises on purpose: the CLI turns these (and only these) into one line."""


class GpupixError(Exception):
    """Root of every error gpupix raises for a reason a user can act on."""


class ConfigError(GpupixError, ValueError):
    """The job config or the command line is invalid; the whole job cannot run (exit 2)."""


class ImageError(GpupixError, ValueError):
    """One image cannot be processed; it is recorded as failed and the batch goes on."""


class BackendUnavailableError(GpupixError, RuntimeError):
    """The requested backend cannot run here (no CuPy, no device, no cuML)."""


class QualityError(ImageError):
    """An image misses its ``min_quality``: it is not written, and the run exits 99 (as
    pngquant does). ``fields`` (e.g. the achieved quality) are added to its metrics row."""

    def __init__(self, message: str, *, fields: dict | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})
