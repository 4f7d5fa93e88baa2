"""The checks every registered job kind passes, the way scikit-learn checks every estimator.

The suite is parametrized over the registry (:data:`gpupix.jobs.JOBS`), so a job kind added
later is checked without editing this file: the example job in ``example_job.py`` is one,
registered by its own module. A kind runs here with its default settings on small images
that carry a few key-coloured (magenta) pixels, which every built-in kind accepts.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tests.jobs.example_job  # noqa: F401 - registers the example kind, as a plugin would
from gpupix.backends.cpu import CpuBackend
from gpupix.config import validate_config
from gpupix.io import decode, discover
from gpupix.jobs import JOBS, ImageJob, WholeSetJob, make_job, report_hints
from gpupix.pipeline import Reporter, inputs_of, run_job
from tests.conftest import gradient_image

KINDS = sorted(JOBS)
IMAGE_KINDS = [name for name in KINDS if issubclass(JOBS[name], ImageJob)]


def images(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = gradient_image(20, 24, seed=i)
        pixels[5:8, 6:10] = (255, 0, 255)  # a small keyed hole
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def config_for(job: str, tmp_path: Path, out: str = "out", *, one_at_a_time: bool = False,
               **executor):
    batch = {"compute_workers": 1}
    if one_at_a_time:  # one image in flight: a stop lands between images
        batch.update(size=1, prefetch=0)
    return validate_config({
        "job": job, "input": {"paths": [str(images(tmp_path / "in"))]},
        "output": {"dir": str(tmp_path / out)}, "backend": "cpu", "report": False,
        "batch": batch, "executor": executor or {"kind": "local"}})


def without_timing(rows: list[dict], out_dir: Path) -> dict[str, dict]:
    kept = {}
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("seconds", "k_seconds")}
        row["output"] = str(Path(row["output"]).relative_to(out_dir))
        row.pop("outputs", None)
        kept[Path(row["input"]).name] = row
    return kept


@pytest.mark.parametrize("kind", KINDS)
def test_the_kind_declares_the_contract(kind):
    job_class = JOBS[kind]
    assert job_class.name == kind
    assert issubclass(job_class, ImageJob | WholeSetJob)
    assert report_hints(kind) is job_class.report_hints
    settings = job_class.settings_model()  # every setting has a default
    assert settings == settings.model_copy()


def snapshot(job) -> dict:
    """The job's attributes by value (identity for what cannot be copied: a lock)."""
    state = {}
    for name, value in vars(job).items():
        try:
            state[name] = repr(copy.deepcopy(value))
        except TypeError:
            state[name] = id(value)
    return state


@pytest.mark.parametrize("kind", KINDS)
def test_planning_has_no_side_effects(kind, tmp_path):
    config = config_for(kind, tmp_path)
    job = make_job(config)
    before = snapshot(job)
    items = inputs_of(config, job)
    first = [job.output_relatives(item) for item in items]
    again = [make_job(config).output_relatives(item) for item in items]
    assert first == again == [job.output_relatives(item) for item in items]
    assert snapshot(job) == before
    assert not (tmp_path / "out").exists()  # planning writes nothing


def prepared(kind: str, tmp_path: Path):
    """A job of ``kind`` that has taken its prepared state, its inputs, a cpu backend."""
    config = config_for(kind, tmp_path)
    job = make_job(config)
    backend = CpuBackend(n_threads=1)
    items = inputs_of(config, job)
    job.use_state(job.prepare(items, backend))
    return job, items, backend


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_encode_makes_one_file_per_output_and_changes_nothing(kind, tmp_path):
    job, items, backend = prepared(kind, tmp_path)
    for item in items:
        [processed] = job.process_batch([(item, decode(item.path))], backend)
        assert not isinstance(processed, BaseException), processed
        metrics = json.dumps(processed.metrics, sort_keys=True, default=str)
        encoded = job.encode(processed)
        assert len(encoded.files) == len(job.output_relatives(item))
        assert all(isinstance(data, bytes) and data for data in encoded.files)
        assert json.dumps(processed.metrics, sort_keys=True, default=str) == metrics


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_a_batch_call_equals_single_calls(kind, tmp_path):
    job, items, backend = prepared(kind, tmp_path)
    batch = [(item, decode(item.path)) for item in items]
    together = job.process_batch(batch, backend)
    alone = [job.process(item, image, backend) for item, image in batch]
    assert len(together) == len(batch)
    for a, b in zip(together, alone, strict=True):
        assert job.encode(a).files == job.encode(b).files


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_dask_rows_equal_local_rows(kind, tmp_path, dask_cluster):
    local = run_job(config_for(kind, tmp_path, "local"))
    remote = run_job(config_for(kind, tmp_path, "dask", kind="dask", chunk=2,
                                address=dask_cluster.scheduler_address))
    assert local.counts == remote.counts and local.counts["ok"] == 4
    assert without_timing(remote.rows, tmp_path / "dask") == \
        without_timing(local.rows, tmp_path / "local")
    for row in local.rows:
        name = Path(row["output"]).relative_to(tmp_path / "local")
        assert (tmp_path / "dask" / name).read_bytes() == Path(row["output"]).read_bytes()


class StopAfterFirst(Reporter):
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def advance(self, row: dict) -> None:
        self.stop.set()


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_a_stop_between_images_leaves_whole_outputs_and_a_rerun_finishes(kind, tmp_path):
    config = config_for(kind, tmp_path, one_at_a_time=True)
    stop = threading.Event()
    first = run_job(config, reporter=StopAfterFirst(stop), stop=stop)
    assert first.interrupted and 1 <= first.counts["ok"] < 4
    out = tmp_path / "out"
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix == ".png"]
    for path in written:  # every file there is whole
        with Image.open(path) as image:
            image.load()
    assert not [p for p in out.iterdir() if p.name.startswith(".gpupix-tmp")]
    second = run_job(config)
    assert second.counts["ok"] + second.counts["skipped"] == 4
    assert second.counts["skipped"] == first.counts["ok"]


@pytest.mark.parametrize("kind", [name for name in KINDS if issubclass(JOBS[name], WholeSetJob)])
def test_a_whole_set_job_gives_a_row_per_input(kind, tmp_path):
    config = config_for(kind, tmp_path)
    result = run_job(config)
    assert len(result.rows) == len(discover(config.input.paths))
    assert {row["status"] for row in result.rows} <= {"ok"}


def test_the_example_job_runs_from_a_job_file(tmp_path):
    """One module and one register line: validate, run, report and summary know it."""
    from gpupix.report import write_report

    config = validate_config({"job": "invert", "input": {"paths": [str(images(tmp_path / "in"))]},
                              "output": {"dir": str(tmp_path / "out")}, "backend": "cpu",
                              "invert": {"strength": 1.0}})
    result = run_job(config)
    assert result.counts["ok"] == 4 and result.summary["config"]["invert"] == {"strength": 1.0}
    out = np.asarray(Image.open(tmp_path / "out" / "img0.png"))
    source = np.asarray(Image.open(tmp_path / "in" / "img0.png"))
    assert (out == 255 - source).all()
    page = write_report(tmp_path / "out", result.rows, result.summary).read_text()
    assert "negative" in page and "positive" in page  # the cards use its hints
