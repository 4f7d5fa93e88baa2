"""YAML job file -> validated, frozen :class:`JobConfig`. Every check and message lives here.

Errors name the file and the field path, e.g.
``configs/q.yaml: quantize.k: must be 2..256, got 1000``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from gpupix.errors import ConfigError
from gpupix.io import is_glob
from gpupix.settings import (  # noqa: F401 - the shared sections, re-exported
    SHOWN_CHARS,
    BatchConfig,
    ExecutorConfig,
    InputConfig,
    MetricName,
    NoiseConfig,
    OutputConfig,
    QualityTarget,
    Section,
    odd,
    shown,
)


class JobConfig(Section):
    """A validated job file. The job sections (``quantize``, ``inpaint``, ...) come from the
    registry (:mod:`gpupix.jobs`): :func:`job_config_model` adds one optional field per job
    kind, so ``config.quantize`` is the quantize settings of a quantize job."""

    job: str
    input: InputConfig
    output: OutputConfig
    backend: Literal["auto", "cpu", "cuda"] = "auto"
    batch: BatchConfig = BatchConfig()
    seed: int = Field(0, ge=0, le=2**32 - 1)
    metrics: tuple[MetricName, ...] = ("psnr", "delta_e", "ssim")
    executor: ExecutorConfig = ExecutorConfig()
    report: bool = True  # report.html + report/ in output.dir after the run

    @field_validator("job")
    @classmethod
    def _a_known_job(cls, job: str) -> str:
        from gpupix.jobs import JOBS

        if job not in JOBS:
            raise ValueError(f"must be one of {', '.join(JOBS)}, got {shown(job)}")
        return job

    @model_validator(mode="after")
    def _one_job_section(self) -> JobConfig:
        from gpupix.jobs import JOBS

        for name in JOBS:
            if name != self.job and getattr(self, name, None) is not None:
                raise ValueError(f"section {name!r} is given but job is {self.job!r}")
        if getattr(self, self.job, None) is None:  # the job's own section defaults
            object.__setattr__(self, self.job, JOBS[self.job].settings_model())
        return self

    @model_validator(mode="after")
    def _format_fits_the_job(self) -> JobConfig:
        from gpupix.jobs import JOBS

        if self.output.format == "jpeg" and JOBS[self.job].exact_colors:
            raise ValueError(f"output.format: jpeg would blur the exact colours a {self.job} "
                             "job writes; use png or webp (lossless)")
        return self

    @property
    def section(self) -> Any:
        """The settings of this config's job (``config.quantize`` for a quantize job)."""
        return getattr(self, self.job)

    def __reduce__(self) -> tuple[Any, ...]:
        # The model class is built from the registry: a worker rebuilds it from the data,
        # which names only this job's section (the worker may know other job kinds).
        others = {name for name in type(self).model_fields if name != self.job
                  and getattr(self, name) is None and name not in JobConfig.model_fields}
        return (_job_config_from, (self.model_dump(exclude=others),))


def _job_config_from(data: dict[str, Any]) -> JobConfig:
    return job_config_model().model_validate(data)


_MODELS: dict[tuple[tuple[str, type], ...], type[JobConfig]] = {}


def job_config_model() -> type[JobConfig]:
    """:class:`JobConfig` with one optional section per registered job kind."""
    from pydantic import create_model

    from gpupix.jobs import JOBS

    key = tuple((name, job.settings_model) for name, job in JOBS.items())
    model = _MODELS.get(key)
    if model is None:
        sections: dict[str, Any] = {name: (settings | None, None) for name, settings in key}
        model = _MODELS[key] = create_model("JobConfig", __base__=JobConfig, **sections)
    return model


# A job file is a few dozen settings. These bounds are far above any real one and far below
# what hurts: an alias re-uses a whole subtree, so nine anchored lists of nine aliases are a
# few hundred bytes that expand to 9**9 values ("billion laughs"); validation and error
# messages walk the expanded structure, so it is refused while the document is composed.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 10_000   # scalars and collections, counting each alias as what it expands to
MAX_YAML_DEPTH = 64       # nested collections (PyYAML's composer recurses per level)
MAX_NUMBER_CHARS = 100


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a budget: nodes (aliases expanded), depth, unique keys.

    The budget is charged while the node graph is composed, before any Python object is
    built, so a hostile file costs at most :data:`MAX_YAML_NODES` steps however far its
    aliases would expand.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0  # nodes so far, each alias counted as the subtree it stands for
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed

    def _charge(self, count: int, mark: Any) -> None:
        self._expanded += count
        if self._expanded > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_NODES:,} values once aliases are expanded "
                "(an alias bomb?); a job file needs far fewer", mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # an alias inside the collection it names
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to a collection that contains it "
                    "(a recursive structure)", mark)
            self._charge(size, mark)
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", mark)
        before = self._expanded
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._charge(1, mark)
        self._sizes[id(node)] = self._expanded - before
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # `<<: *defaults` entries are overridden by the keys beside them
            first = seen.setdefault((key_node.tag, key_node.value), key_node.start_mark)
            if first is not key_node.start_mark:
                raise yaml.composer.ComposerError(
                    None, None, f"duplicate key {shown(key_node.value)} (first at line "
                    f"{first.line + 1})", key_node.start_mark)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2001-13-01, !!float abc
            value = shown(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {value} as {node.tag.rsplit(':', 1)[-1]} "
                f"({_cut(str(exc), 120)})", node.start_mark) from None

    def construct_yaml_int(self, node: Any) -> Any:
        if len(node.value) > MAX_NUMBER_CHARS:  # int() of thousands of digits is refused, slowly
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {len(node.value):,} characters; at most "
                f"{MAX_NUMBER_CHARS}", node.start_mark)
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
def section_model(job: str) -> type[Section]:
    """The config model of a job's own section (``QuantizeConfig`` for ``quantize``)."""
    from gpupix.jobs import JOBS

    return JOBS[job].settings_model


def _parse_yaml(text: str, source: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:  # a --set value, or a job file read by the caller
        raise ConfigError(f"{source}: more than {MAX_CONFIG_BYTES:,} characters; a job file "
                          "is a few settings")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: builds no Python object
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{source}: invalid YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {_cut(str(exc), 160)}") from None
    except RecursionError:  # a last resort: the depth bound above should come first
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None


def apply_override(data: dict[str, Any], assignment: str, source: str = "--set") -> None:
    """Apply one ``key.path=value`` (value parsed as YAML) to the raw config mapping."""
    key, sep, raw_value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {shown(assignment)}: expected key.path=value")
    parts = key.strip().split(".")
    if raw_value.strip().startswith("#"):  # a colour like #ff00ff, not a YAML comment
        value: Any = raw_value.strip()
    else:
        value = _parse_yaml(raw_value, f"--set {_cut(key)}")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            path = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {shown(assignment)}: {_cut(path)} is not a section")
        node = child
    node[parts[-1]] = value


def _format_error(error: dict[str, Any]) -> str:
    path = ".".join(_cut(str(p)) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(tuple(error["loc"]))
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    got = error.get("input")
    if error["type"] not in ("extra_forbidden", "missing") and not isinstance(got, dict):
        if "got " not in message:  # our own validators already show what they got
            message += f", got {shown(got)}"
    return f"{path}: {_cut(message, 4 * SHOWN_CHARS)}"


def _cut(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """'; did you mean quantize.k?' for a mistyped key, from the keys its section has."""
    import difflib
    import types
    import typing

    model: Any = job_config_model()
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, Section)),
                     None)
        if model is None or isinstance(model, types.UnionType):
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
    return f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?" if close else ""


def validate_config(data: Any, *, source: str = "<config>", base_dir: Path | None = None
                    ) -> JobConfig:
    """Validate a raw mapping; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        config = job_config_model().model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_format_error(first)}{more}") from None
    if base_dir is not None:
        try:
            config = _resolve_paths(config, base_dir)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    _check_output_outside_inputs(config, source)
    try:
        config.section.check_paths(config.job)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read, override and validate a job file. Raises :class:`ConfigError` with one line."""
    path = Path(path)
    try:  # bounded: a job file named /dev/zero (or a pipe that never ends) is refused
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes; a job file is "
                              "a few settings")
        text = raw.decode("utf-8")
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


_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_path(value: str, field: str) -> str:
    """``~`` and ``$VAR`` / ``${VAR}`` expanded, as a shell would; an unset variable is an
    error (left as it is, ``$HOME`` would become a folder named ``$HOME``)."""
    expanded = os.path.expandvars(os.path.expanduser(value))
    leftover = _VARIABLE.search(expanded)
    if leftover is not None:
        raise ConfigError(f"{field}: {shown(value)} uses {leftover.group(0)}, which is not "
                          "set in the environment")
    if expanded.startswith("~"):
        raise ConfigError(f"{field}: {shown(value)}: cannot expand {expanded.split('/')[0]!r} "
                          "(no such user)")
    return expanded


def _resolve_paths(config: JobConfig, base_dir: Path) -> JobConfig:
    def resolve(p: str, field: str) -> str:
        p = expand_path(p, field)
        return p if Path(p).is_absolute() else os.path.normpath(base_dir / p)

    paths = tuple(resolve(p, f"input.paths[{i}]") for i, p in enumerate(config.input.paths))
    # resolved once, links included: every write below it is then checked link by link
    output = os.path.realpath(resolve(config.output.dir, "output.dir"))
    update: dict[str, Any] = {
        "input": config.input.model_copy(update={"paths": paths}),
        "output": config.output.model_copy(update={"dir": output}),
    }
    update[config.job] = config.section.resolve_paths(resolve, config.job)
    return config.model_copy(update=update)


def _check_output_outside_inputs(config: JobConfig, source: str) -> None:
    """Refuse an output folder that is, or is inside, a folder the inputs are read from.

    Outputs there would be read back as inputs by the next run, or replace an input of the
    same name. Checked on paths only (symlinks resolved), so ``validate`` catches it too.
    """
    output = Path(os.path.realpath(config.output.dir))
    for index, entry in enumerate(config.input.paths):
        path = Path(entry)
        if is_glob(entry):
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
