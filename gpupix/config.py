"""YAML job file -> validated, frozen :class:`JobConfig`. Every check and message lives here.

Errors name the file and the field path, e.g.
``configs/q.yaml: quantize.k: must be 2..256, got 1000``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpupix.errors import ConfigError

MetricName = Literal["psnr", "rmse", "delta_e", "ssim"]
JOB_SECTIONS = ("quantize",)


class Section(BaseModel):
    """Frozen, and unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(Section):
    paths: tuple[str, ...] = Field(min_length=1)
    recursive: bool = False


class OutputConfig(Section):
    dir: str
    overwrite: bool = False


class BatchConfig(Section):
    size: int = Field(16, ge=1, le=4096)
    prefetch: int = Field(2, ge=0, le=64)
    io_workers: int = Field(2, ge=1, le=64)


class QuantizeConfig(Section):
    k: int = 16
    color_space: Literal["rgb", "lab", "oklab", "rgb_lab"] = "rgb_lab"
    max_iter: int = Field(100, ge=1, le=10_000)

    @field_validator("k")
    @classmethod
    def _k_fits_a_palette(cls, k: int) -> int:
        if not 2 <= k <= 256:
            raise ValueError(f"must be 2..256 (a palette PNG holds at most 256 colours), got {k}")
        return k


class JobConfig(Section):
    job: Literal["quantize"]
    input: InputConfig
    output: OutputConfig
    backend: Literal["auto", "cpu", "cuda"] = "auto"
    batch: BatchConfig = BatchConfig()
    seed: int = Field(0, ge=0, le=2**32 - 1)
    metrics: tuple[MetricName, ...] = ("psnr", "delta_e", "ssim")
    quantize: QuantizeConfig | None = None

    @model_validator(mode="after")
    def _one_job_section(self) -> JobConfig:
        for section in JOB_SECTIONS:
            if section != self.job and getattr(self, section, None) is not None:
                raise ValueError(f"section {section!r} is given but job is {self.job!r}")
        if getattr(self, self.job) is None:  # the job's own section defaults
            default = type(self).model_fields[self.job].annotation.__args__[0]()
            object.__setattr__(self, self.job, default)
        return self

    @property
    def section(self) -> Section:
        """The settings of this config's job (``config.quantize`` for a quantize job)."""
        return getattr(self, self.job)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{source}: invalid YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def apply_override(data: dict[str, Any], assignment: str, source: str = "--set") -> None:
    """Apply one ``key.path=value`` (value parsed as YAML) to the raw config mapping."""
    key, sep, raw_value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    parts = key.strip().split(".")
    value = _parse_yaml(raw_value, f"--set {key}")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            path = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {assignment!r}: {path} is not a section")
        node = child
    node[parts[-1]] = value


def _format_error(error: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    got = error.get("input")
    if error["type"] not in ("extra_forbidden", "missing") and not isinstance(got, dict):
        if not message.endswith(f"got {got}"):
            message += f", got {got!r}"
    return f"{path}: {message}"


def validate_config(data: Any, *, source: str = "<config>", base_dir: Path | None = None
                    ) -> JobConfig:
    """Validate a raw mapping; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_format_error(first)}{more}") from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read, override and validate a job file. Raises :class:`ConfigError` with one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    data = _parse_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    for assignment in overrides:
        apply_override(data, assignment)
    return validate_config(data, source=str(path), base_dir=path.resolve().parent)


def _resolve_paths(config: JobConfig, base_dir: Path) -> JobConfig:
    def resolve(p: str) -> str:
        return p if Path(p).is_absolute() else os.path.normpath(base_dir / p)

    paths = tuple(resolve(p) for p in config.input.paths)
    return config.model_copy(update={
        "input": config.input.model_copy(update={"paths": paths}),
        "output": config.output.model_copy(update={"dir": resolve(config.output.dir)}),
    })
