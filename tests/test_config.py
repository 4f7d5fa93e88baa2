from pathlib import Path

import pytest

from gpupix.config import load_config
from gpupix.errors import ConfigError

BASE = """job: quantize
input: {paths: [images]}
output: {dir: out}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.quantize.k == 16 and config.quantize.color_space == "rgb_lab"
    assert config.input.paths == (str(tmp_path / "images"),)
    assert config.output.dir == str(tmp_path / "out")
    assert config.backend == "auto" and config.batch.size == 16


@pytest.mark.parametrize("extra, message", [
    ("quantize: {k: 1000}", "job.yaml: quantize.k: must be 2..256"),
    ("quantize: {k: 1}", "quantize.k: must be 2..256"),
    ("quantize: {colour_space: rgb}", "quantize.colour_space: unknown key"),
    ("quantize: {color_space: hsv}", "quantize.color_space"),
    ("batch: {size: 0}", "batch.size"),
    ("backend: gpu", "backend:"),
    ("metrics: [psnr, lpips]", "metrics.1"),
    ("surprise: 1", "surprise: unknown key"),
])
def test_errors_name_file_and_field(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(write(tmp_path, BASE + extra + "\n"))


def test_error_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE + "quantize: {k: 1000, max_iter: 0}\n"))
    assert "\n" not in str(caught.value)
    assert "and 1 more" in str(caught.value)


def test_invalid_yaml_shows_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"job\.yaml: invalid YAML at line \d+, column \d+"):
        load_config(write(tmp_path, "job: quantize\ninput: [unclosed\n"))


def test_python_object_tags_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, BASE + "seed: !!python/object/apply:os.getcwd []\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_values(tmp_path):
    config = load_config(write(tmp_path, BASE), ["quantize.k=64", "backend=cpu", "seed=7"])
    assert config.quantize.k == 64 and config.backend == "cpu" and config.seed == 7


@pytest.mark.parametrize("assignment, message", [
    ("quantize.k=999", "quantize.k"), ("novalue", "expected key.path=value"),
    ("job.k=3", "job is not a section"),
])
def test_bad_overrides(tmp_path, assignment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, BASE), [assignment])


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(Exception, match="frozen"):
        config.seed = 3


def test_section_of_an_unknown_job_is_refused(tmp_path):
    from gpupix.config import validate_config

    with pytest.raises(ConfigError, match="<config>: nosuchjob: unknown key"):
        validate_config({"job": "quantize", "input": {"paths": ["a"]}, "output": {"dir": "o"},
                         "nosuchjob": {}})


def test_executor_defaults_to_local_and_takes_dask_settings(tmp_path):
    assert load_config(write(tmp_path, BASE)).executor.kind == "local"
    dask = load_config(write(tmp_path, BASE + "executor: {kind: dask, address: "
                             "'tcp://scheduler:8786', chunk: 8, retries: 0}\n")).executor
    assert (dask.kind, dask.address, dask.chunk, dask.retries) == (
        "dask", "tcp://scheduler:8786", 8, 0)


@pytest.mark.parametrize("executor, message", [
    ("{kind: spark}", "executor.kind"),
    ("{kind: local, address: 'tcp://s:8786'}", "executor: address and n_workers are for kind"),
    ("{kind: dask, address: 'scheduler:8786'}", "executor: address 'scheduler:8786' needs a"),
    ("{kind: dask, address: 'tcp://s:8786', n_workers: 2}", "executor: n_workers is for a"),
    ("{kind: dask, chunk: 0}", "executor.chunk"),
])
def test_executor_errors_name_the_field(tmp_path, executor, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, BASE + f"executor: {executor}\n"))
