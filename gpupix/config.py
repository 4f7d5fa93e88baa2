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
JOB_SECTIONS = ("quantize", "fit_denoiser", "denoise", "corrupt", "inpaint")


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
    # images computed at once by the local executor; None: one per usable core on cpu, one
    # on cuda
    compute_workers: int | None = Field(None, ge=1, le=1024)
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


class QuantizeConfig(Section):
    k: int | Literal["auto"] = 16
    color_space: Literal["rgb", "lab", "oklab", "rgb_lab"] = "rgb_lab"
    max_iter: int = Field(100, ge=1, le=10_000)
    target: QualityTarget | None = None
    min_quality: QualityTarget | None = None
    max_k: int = 256
    palette: str = "per_image"
    dither: Literal["none", "floyd_steinberg"] = "none"
    dither_strength: float = Field(1.0, ge=0.0, le=1.0)
    sweep: bool = False
    skip_if_larger: bool = False

    @field_validator("k", "max_k")
    @classmethod
    def _k_fits_a_palette(cls, k: int | str) -> int | str:
        if k != "auto" and not 2 <= k <= 256:  # type: ignore[operator]
            raise ValueError(f"must be 2..256 (a palette PNG holds at most 256 colours), got {k}")
        return k

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_auto_or_whole(cls, k: Any) -> Any:
        # one message for the union int | "auto", not one per member
        if k != "auto" and (isinstance(k, bool) or not isinstance(k, int)):
            raise ValueError("must be auto or a whole number 2..256")
        return k

    @model_validator(mode="before")
    @classmethod
    def _dither_mapping(cls, data: Any) -> Any:
        # `dither: {floyd_steinberg: 0.8}` is `dither: floyd_steinberg` at strength 0.8
        if isinstance(data, dict) and isinstance(data.get("dither"), dict):
            dither = data["dither"]
            if len(dither) != 1:
                raise ValueError(f"dither: expected one method and its strength, got {dither!r}")
            (method, strength), = dither.items()
            data = {**data, "dither": method, "dither_strength": strength}
        return data

    @field_validator("palette")
    @classmethod
    def _palette_source(cls, palette: str) -> str:
        if palette not in ("per_image", "shared") and not palette.endswith((".json", ".png")):
            raise ValueError("must be per_image, shared, or the path of a palette.json or "
                             "palette.png to reuse")
        return palette

    @model_validator(mode="after")
    def _consistent(self) -> QuantizeConfig:
        if self.k == "auto" and self.target is None:
            raise ValueError("k: auto needs a target, e.g. target: {psnr: 38}")
        if self.k != "auto" and self.target is not None:
            raise ValueError(f"target is used only with k: auto, but k is {self.k}")
        if self.palette not in ("per_image", "shared") and (self.k == "auto" or self.sweep):
            raise ValueError(f"palette {self.palette!r} is a fixed palette: k: auto and sweep "
                             "do not apply")
        return self

    @property
    def fixed_palette(self) -> str | None:
        """The path of a palette to reuse, or None when the palette is fitted here."""
        return None if self.palette in ("per_image", "shared") else self.palette


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


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"must be odd (a patch or window has a centre pixel), got {value}")
    return value


class FitDenoiserConfig(Section):
    kind: Literal["whole", "patch"] = "whole"
    noise: NoiseConfig = NoiseConfig()
    clean: str | None = None          # paired mode: folder of clean images named as the inputs
    copies: int = Field(4, ge=1, le=64)
    patch: int = Field(5, ge=1, le=15)
    samples: int = Field(100_000, ge=100, le=20_000_000)
    components: int | None = Field(None, ge=1, le=4096)   # None: 64 (whole), 16 (patch)
    k: int = Field(30, ge=1, le=1000)
    weights: Literal["uniform", "distance", "gaussian"] = "gaussian"
    h: float = Field(0.25, gt=0, le=100)
    ridge: float = Field(1e-3, ge=0, le=100)
    holdout: float = Field(0.2, ge=0, lt=1)
    model: str = "model.npz"

    @field_validator("patch")
    @classmethod
    def _patch_is_odd(cls, value: int) -> int:
        return _odd(value)

    @field_validator("model")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if not name.endswith(".npz") or "/" in name or "\\" in name:
            raise ValueError(f"must be a file name ending in .npz (written in output.dir), "
                             f"got {name!r}")
        return name


class DenoiseConfig(Section):
    method: Literal["self", "model"] = "self"
    model: str | None = None          # method model: a .npz written by fit_denoiser
    noise: NoiseConfig | None = None  # corrupt the (clean) inputs first, then score the result
    difference: bool = False          # with noise: also write |denoised - clean| as name.diff.png
    k: int | None = Field(None, ge=1, le=1000)       # model: its own k; global search: 32
    search: Literal["window", "global"] = "window"   # method self: where neighbours are sought
    patch: int | None = Field(None, ge=1, le=15)     # None: 3 (window), 5 (global)
    window: int = Field(7, ge=3, le=41)
    stride: int = Field(2, ge=1, le=15)              # global: every stride-th patch queries
    components: int | None = Field(None, ge=1, le=64)  # None: 4 (window), 8 (global)
    h: float = Field(1.0, gt=0, le=100)
    sigma: float | None = Field(None, gt=0, le=255)
    tile: int = Field(128, ge=16, le=8192)
    batch: int = Field(65536, ge=256, le=16_777_216)

    @field_validator("patch", "window")
    @classmethod
    def _patch_is_odd(cls, value: int | None) -> int | None:
        return value if value is None else _odd(value)

    @model_validator(mode="after")
    def _model_for_method(self) -> DenoiseConfig:
        if self.method == "model" and not self.model:
            raise ValueError("method 'model' needs denoise.model: path to a fit_denoiser .npz")
        if self.method == "self" and self.model:
            raise ValueError("denoise.model is given but method is 'self'; "
                             "use method: model to use it")
        if self.difference and self.noise is None:
            raise ValueError("denoise.difference needs denoise.noise: the difference is taken "
                             "against the clean input")
        if self.search == "global" and self.patch is not None and self.stride > self.patch:
            raise ValueError(f"denoise.stride ({self.stride}) must be at most denoise.patch "
                             f"({self.patch}), or some pixels are in no patch")
        return self


class HolesConfig(Section):
    count: int = Field(0, ge=0, le=100_000)
    size: int = Field(40, ge=1, le=65_535)


class CorruptConfig(Section):
    drop: float = Field(0.3, ge=0.0, le=0.99)
    holes: HolesConfig = HolesConfig()
    noise: Literal["none", "gaussian", "uniform", "salt_pepper"] = "none"
    sigma: float = Field(25.0, ge=0.0, le=1000.0)
    low: int = Field(0, ge=-1000, le=1000)
    high: int = Field(500, ge=-1000, le=1000)
    amount: float = Field(0.05, ge=0.0, le=1.0)
    mark: Literal["magenta", "black", "transparent"] = "magenta"

    @model_validator(mode="after")
    def _low_below_high(self) -> CorruptConfig:
        if self.low >= self.high:
            raise ValueError(f"uniform noise needs low < high, got low={self.low}, "
                             f"high={self.high}")
        return self


class InpaintConfig(Section):
    mask: Literal["auto", "file", "key_color", "alpha"] = "auto"
    mask_suffix: str = Field(".mask.png", min_length=1)
    key_color: str = "#ff00ff"
    k: int | Literal["auto"] = "auto"
    weights: Literal["uniform", "distance"] = "distance"
    method: Literal["knn", "knn_linear", "vote"] = "knn"
    reference: str | None = None
    tile: int = Field(256, ge=16, le=16_384)

    @field_validator("key_color")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        text = value.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"must be a colour like '#ff00ff', got {value!r}")
        return "#" + text.lower()

    @field_validator("k")
    @classmethod
    def _k_in_range(cls, k: int | str) -> int | str:
        if k != "auto" and not 1 <= k <= 64:
            raise ValueError(f"must be 1..64 or auto, got {k}")
        return k

    @property
    def key_rgb(self) -> tuple[int, int, int]:
        text = self.key_color.lstrip("#")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


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
            raise ValueError(f"address {self.address!r} needs a scheme, e.g. "
                             "tcp://scheduler:8786 (or null to start a local cluster)")
        if self.address is not None and self.n_workers is not None:
            raise ValueError("n_workers is for a cluster gpupix starts itself; the cluster "
                             f"at {self.address!r} has its own workers")
        return self


class JobConfig(Section):
    job: Literal["quantize", "fit_denoiser", "denoise", "corrupt", "inpaint"]
    input: InputConfig
    output: OutputConfig
    backend: Literal["auto", "cpu", "cuda"] = "auto"
    batch: BatchConfig = BatchConfig()
    seed: int = Field(0, ge=0, le=2**32 - 1)
    metrics: tuple[MetricName, ...] = ("psnr", "delta_e", "ssim")
    quantize: QuantizeConfig | None = None
    fit_denoiser: FitDenoiserConfig | None = None
    denoise: DenoiseConfig | None = None
    corrupt: CorruptConfig | None = None
    inpaint: InpaintConfig | None = None
    executor: ExecutorConfig = ExecutorConfig()
    report: bool = True  # report.html + report/ in output.dir after the run

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
    _check_output_outside_inputs(config, source)
    _check_inpaint_reference(config, source)
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
    update: dict[str, Any] = {
        "input": config.input.model_copy(update={"paths": paths}),
        "output": config.output.model_copy(update={"dir": resolve(config.output.dir)}),
    }
    for section, key in SECTION_PATHS:  # paths inside job sections, also file-relative
        settings = getattr(config, section, None)
        if settings is not None and getattr(settings, key) is not None:
            update[section] = settings.model_copy(update={key: resolve(getattr(settings, key))})
    quantize = getattr(config, "quantize", None)
    if quantize is not None and quantize.fixed_palette is not None:  # per_image/shared: names
        update["quantize"] = quantize.model_copy(
            update={"palette": resolve(quantize.fixed_palette)})
    return config.model_copy(update=update)


# (section, field) pairs holding a path, resolved against the config file's directory
SECTION_PATHS: tuple[tuple[str, str], ...] = (("fit_denoiser", "clean"), ("denoise", "model"),
                                               ("inpaint", "reference"))


def _check_inpaint_reference(config: JobConfig, source: str) -> None:
    """inpaint.reference, when given, must be a folder (of clean originals)."""
    inpaint = config.inpaint
    if inpaint is not None and inpaint.reference is not None \
            and not Path(inpaint.reference).is_dir():
        raise ConfigError(f"{source}: inpaint.reference: {inpaint.reference!r} is not a "
                          "directory")


def _check_output_outside_inputs(config: JobConfig, source: str) -> None:
    """Refuse an output folder that is, or is inside, a folder the inputs are read from.

    Outputs there would be read back as inputs by the next run, or replace an input of the
    same name. Checked on paths only (symlinks resolved), so ``validate`` catches it too.
    """
    output = Path(os.path.realpath(config.output.dir))
    for index, entry in enumerate(config.input.paths):
        path = Path(entry)
        if set("*?[") & set(entry):
            root = Path(*_until_magic(path.parts))
            what = f"the folder the glob {entry!r} reads"
        elif path.is_dir():
            root, what = path, "that input folder"
        else:
            root, what = path.parent, "the folder of that input file"
            if Path(os.path.realpath(root)) != output:
                continue  # a file's neighbours are not read: only its own folder is refused
        root = Path(os.path.realpath(root))
        if output == root or root in output.parents:
            raise ConfigError(
                f"{source}: output.dir: {config.output.dir!r} is, or is inside, "
                f"input.paths[{index}] ({what}, {str(root)!r}); outputs would be read back "
                "as inputs or replace them; choose an output folder outside the inputs")


def _until_magic(parts: tuple[str, ...]) -> list[str]:
    taken = []
    for part in parts:
        if set("*?[") & set(part):
            break
        taken.append(part)
    return taken
