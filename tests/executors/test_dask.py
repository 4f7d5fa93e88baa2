"""The Dask executor on a real ``distributed.LocalCluster``: two worker processes on loopback.

One cluster serves the module (starting one costs seconds); tests reach it the way a user
does, through ``executor.address`` in the config.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.backends import CpuBackend
from gpupix.cli import app
from gpupix.config import load_config
from gpupix.io import TEMP_PREFIX
from gpupix.jobs.quantize import QuantizeJob
from gpupix.pipeline import run_job
from tests.conftest import gradient_image
from tests.helpers import rows_by_name as rows_of

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
TIMING = {"seconds"}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


def without_timing(rows: dict[str, dict], out_dir: Path) -> dict[str, dict]:
    """Rows with timings dropped and output paths made relative to their folder."""
    return {name: {k: (str(Path(v).relative_to(out_dir)) if k == "output" else v)
                   for k, v in row.items() if k not in TIMING} for name, row in rows.items()}


def outputs_of(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.glob("*.png"))}


def shipped_quantize_job(tmp_path: Path, out: str) -> Path:
    """configs/quantize.yaml on a copy of examples/, writing into ``tmp_path / out``."""
    if not (tmp_path / "examples").exists():
        shutil.copytree(ROOT / "examples", tmp_path / "examples")
    data = yaml.safe_load((ROOT / "configs" / "quantize.yaml").read_text())
    data["input"]["paths"] = [str(tmp_path / "examples")]
    data["output"]["dir"] = str(tmp_path / out)
    job = tmp_path / f"{out}.yaml"
    job.write_text(yaml.safe_dump(data))
    return job


def small_images(folder: Path, count: int, *, size: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(gradient_image(size, size + i, seed=i)).save(folder / f"img{i:02}.png")
    return folder


def quantize_config(tmp_path: Path, images: Path, out: str, **executor):
    job = tmp_path / f"{out}.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(images)]},
        "output": {"dir": str(tmp_path / out)}, "backend": "cpu", "quantize": {"k": 8},
        "executor": executor or {"kind": "local"}}))
    return load_config(job)


def run_cli(job: Path, *options: str) -> None:
    result = runner.invoke(app, ["run", str(job), "--backend", "cpu", "--quiet", *options])
    assert result.exit_code == 0, result.output


@pytest.mark.slow  # the conformance suite runs every job kind on Dask in test-fast
def test_shipped_config_on_dask_matches_the_local_executor(tmp_path, cluster):
    run_cli(shipped_quantize_job(tmp_path, "local"))
    run_cli(shipped_quantize_job(tmp_path, "dask"), "--set", "executor.kind=dask",
            "--set", f"executor.address={cluster.scheduler_address}",
            "--set", "executor.chunk=2")
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert outputs_of(dask) == outputs_of(local)
    assert len(outputs_of(local)) == len(list((ROOT / "examples").glob("*.png")))
    assert without_timing(rows_of(dask), dask) == without_timing(rows_of(local), local)
    summary = json.loads((dask / "summary.json").read_text())
    assert summary["counts"] == {"ok": len(outputs_of(local)), "skipped": 0, "failed": 0}
    assert summary["config"]["executor"]["kind"] == "dask"


class KillOnceJob(QuantizeJob):
    """Quantize, except that the first worker to reach its second image dies mid-write.

    It leaves a torn temporary file behind, as a worker killed inside ``write_atomic``
    would, then exits without any clean-up. A marker file makes it happen once per test.
    """

    images_seen = 0  # per worker process

    def process(self, item, image, backend):
        type(self).images_seen += 1
        marker = Path(self.config.output.dir).parent / "killed.pid"
        if type(self).images_seen == 2:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                torn, _ = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.config.output.dir)
                os.write(torn, b"\x89PNG half an ima")
                os._exit(1)
        return super().process(item, image, backend)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


@pytest.mark.slow  # the conformance suite runs every job kind on Dask in test-fast
def test_a_killed_worker_loses_only_its_task(tmp_path, cluster, monkeypatch):
    images = small_images(tmp_path / "images", 16)
    expected = run_job(quantize_config(tmp_path, images, "local"))
    config = quantize_config(tmp_path, images, "out", kind="dask", chunk=2,
                             address=cluster.scheduler_address)
    monkeypatch.setattr("gpupix.pipeline.make_job", KillOnceJob)
    result = run_job(config)

    killed = int((tmp_path / "killed.pid").read_text())
    assert not running(killed), "the worker did not die"
    out = tmp_path / "out"
    assert result.exit_code == 0 and result.counts["ok"] == 16
    rows = rows_of(out)  # asserts one row per input
    assert sorted(rows) == sorted(p.name for p in images.iterdir())
    assert all(r["status"] == "ok" for r in rows.values())
    assert outputs_of(out) == outputs_of(expected.output_dir)
    assert not list(out.glob(f"{TEMP_PREFIX}*")), "the dead worker's temporary is left"


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_resume_skips_what_is_written(tmp_path, cluster):
    images = small_images(tmp_path / "images", 6)
    config = quantize_config(tmp_path, images, "out", kind="dask", chunk=1,
                             address=cluster.scheduler_address)
    first = run_job(config)
    assert first.counts == {"ok": 6, "skipped": 0, "failed": 0}
    written = outputs_of(first.output_dir)
    (first.output_dir / "img03.png").unlink()
    second = run_job(config)
    assert second.counts == {"ok": 1, "skipped": 5, "failed": 0}
    rows = rows_of(first.output_dir)
    assert [name for name, r in rows.items() if r["status"] == "ok"] == ["img03.png"]
    assert rows["img01.png"]["psnr"] == first.rows[1]["psnr"]  # earlier metrics are kept
    assert outputs_of(second.output_dir) == written
    nowhere = config.model_copy(update={"executor": config.executor.model_copy(
        update={"address": "tcp://127.0.0.1:1"})})
    third = run_job(nowhere)  # nothing left to do: no scheduler is contacted
    assert third.counts == {"ok": 0, "skipped": 6, "failed": 0}


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_a_stop_ends_after_the_running_tasks_and_a_rerun_finishes(tmp_path, cluster):
    import threading

    from gpupix.pipeline import Reporter

    class StopAfterFirstRow(Reporter):
        def advance(self, row):
            stop.set()

    stop = threading.Event()
    images = small_images(tmp_path / "images", 12)
    config = quantize_config(tmp_path, images, "out", kind="dask", chunk=1,
                             address=cluster.scheduler_address)
    first = run_job(config, reporter=StopAfterFirstRow(), stop=stop)
    assert first.interrupted and 0 < first.remaining <= 12 - 1
    # at most the two running tasks (one per worker) finished after the stop
    assert 1 <= first.counts["ok"] <= 3 and first.counts["ok"] + first.remaining == 12
    written = set(outputs_of(first.output_dir))
    assert len(written) == first.counts["ok"]  # no output without its row
    second = run_job(config)
    assert second.counts == {"ok": first.remaining, "skipped": 12 - first.remaining,
                             "failed": 0}
    assert len(rows_of(first.output_dir)) == 12


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_a_bad_image_is_a_failed_row_on_the_worker(tmp_path, cluster):
    images = small_images(tmp_path / "images", 3)
    (images / "broken.png").write_bytes(b"not an image")
    config = quantize_config(tmp_path, images, "out", kind="dask",
                             address=cluster.scheduler_address)
    result = run_job(config)
    assert result.exit_code == 1 and result.counts == {"ok": 3, "skipped": 0, "failed": 1}
    broken = rows_of(tmp_path / "out")["broken.png"]
    assert broken["status"] == "failed" and "broken.png" in broken["error"]


class SharedStateJob(QuantizeJob):
    """Stands in for a job with a fitted artifact: the state is made on the client only."""

    states_made = 0  # on the client
    states_used = 0  # per worker process

    def __init__(self, config):
        super().__init__(config)
        self.state = None

    def prepare(self, items, backend):
        type(self).states_made += 1
        return {"token": f"fitted-in-{os.getpid()}"}

    def use_state(self, state):
        type(self).states_used += 1
        self.state = state

    def process(self, item, image, backend):
        processed = super().process(item, image, backend)
        processed.metrics.update(token=self.state["token"], worker=os.getpid(),
                                 loads=type(self).states_used, threads=backend.n_threads)
        return processed


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_shared_state_is_made_once_and_loaded_once_per_worker(tmp_path, cluster, monkeypatch):
    images = small_images(tmp_path / "images", 8)
    config = quantize_config(tmp_path, images, "out", kind="dask", chunk=1,
                             address=cluster.scheduler_address)
    monkeypatch.setattr("gpupix.pipeline.make_job", SharedStateJob)
    result = run_job(config)
    assert result.counts["ok"] == 8 and SharedStateJob.states_made == 1
    rows = result.rows
    assert {r["token"] for r in rows} == {f"fitted-in-{os.getpid()}"}
    assert os.getpid() not in {r["worker"] for r in rows}  # computed on the workers
    assert {r["loads"] for r in rows} == {1}  # the state reached each worker once
    assert {r["threads"] for r in rows} == {1}  # the backend uses the worker's one thread


@pytest.mark.slow
def test_gpupix_starts_and_stops_its_own_cluster(tmp_path):
    images = small_images(tmp_path / "images", 4)
    config = quantize_config(tmp_path, images, "out", kind="dask", n_workers=2)
    result = run_job(config)
    assert result.counts == {"ok": 4, "skipped": 0, "failed": 0}
    expected = run_job(quantize_config(tmp_path, images, "local"))
    assert outputs_of(result.output_dir) == outputs_of(expected.output_dir)


class PoisonJob(QuantizeJob):
    """Kills every worker that touches ``poison.png``, as a decoder crash would."""

    def process(self, item, image, backend):
        if image.pixels.shape[:2] == (7, 7):
            os._exit(1)
        return super().process(item, image, backend)


@pytest.mark.slow
def test_an_image_that_kills_every_worker_fails_alone(tmp_path, monkeypatch):
    images = small_images(tmp_path / "images", 6)  # 7 images: 3 tasks of up to 3
    Image.fromarray(gradient_image(7, 7)).save(images / "poison.png")
    monkeypatch.setattr("gpupix.pipeline.make_job", PoisonJob)
    # the cluster gpupix starts: retries 0 is one death per task before it is given up
    config = quantize_config(tmp_path, images, "out", kind="dask", chunk=3, retries=0,
                             n_workers=2)
    result = run_job(config)
    rows = rows_of(tmp_path / "out")
    assert result.counts == {"ok": 6, "skipped": 0, "failed": 1}
    assert rows["poison.png"]["status"] == "failed"
    assert "died" in rows["poison.png"]["error"] and "poison.png" in rows["poison.png"]["error"]


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_an_unreachable_scheduler_is_a_config_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr("gpupix.executors.dask.CONNECT_TIMEOUT", "1s")
    job = shipped_quantize_job(tmp_path, "out")
    result = runner.invoke(app, ["run", str(job), "--backend", "cpu", "--quiet", "--set",
                                 "executor.kind=dask", "--set",
                                 f"executor.address=tcp://127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"executor.address: cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}'" \
        in result.output


def test_compose_services_share_the_data_volume_and_its_job_is_valid():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"scheduler", "worker", "client"} <= set(services)
    for name, service in services.items():  # merge keys resolved by the YAML loader
        assert any(v.endswith(":/data") for v in service["volumes"]), name
        assert service["image"] == "gpupix:gpu", name
    assert services["worker"]["entrypoint"][:3] == ["dask", "cuda", "worker"]
    address = services["worker"]["entrypoint"][3]
    assert f"executor.address={address}" in services["client"]["command"]
    assert services["client"]["command"][:2] == ["run", "/data/job.yaml"]
    config = load_config(ROOT / "docker" / "job.example.yaml")
    assert config.executor.kind == "dask" and config.executor.address == address


def test_a_cuda_cluster_without_dask_cuda_says_what_to_install(tmp_path):
    from types import SimpleNamespace

    from gpupix.errors import ConfigError
    from gpupix.executors.dask import DaskExecutor
    from gpupix.io import InputItem

    try:
        import dask_cuda  # noqa: F401
        pytest.skip("dask-cuda is installed here")
    except ImportError:
        pass
    config = quantize_config(tmp_path, small_images(tmp_path / "images", 1), "out",
                             kind="dask")
    work = [(InputItem(Path("img00.png"), tmp_path / "images" / "img00.png"),
             [tmp_path / "out" / "img00.png"])]
    rows = DaskExecutor().run(work, QuantizeJob(config), SimpleNamespace(name="cuda"))
    with pytest.raises(ConfigError, match=r"needs dask-cuda \(pip install 'gpupix\[cuda,dask\]'\)"):
        next(rows)


def test_dask_not_installed_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from gpupix.errors import ConfigError
    from gpupix.executors.dask import DaskExecutor
    from gpupix.io import InputItem

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    config = quantize_config(tmp_path, small_images(tmp_path / "images", 1), "out",
                             kind="dask")
    work = [(InputItem(Path("img00.png"), tmp_path / "images" / "img00.png"),
             [tmp_path / "out" / "img00.png"])]
    rows = DaskExecutor().run(work, QuantizeJob(config), CpuBackend())
    with pytest.raises(ConfigError, match=r"needs Dask distributed \(pip install 'gpupix\[dask"):
        next(rows)


@pytest.mark.slow  # make test; test-fast keeps the conformance suite's Dask runs
def test_inpaint_on_dask_finds_its_references_as_locally(tmp_path, cluster):
    """The reference of an image is found from the config alone, so the job rebuilt on a
    worker scores it as the local run does (it used to lose psnr_missing on Dask)."""
    clean = small_images(tmp_path / "clean" / "sub", 3)
    damaged = tmp_path / "damaged" / "sub"
    damaged.mkdir(parents=True)
    for path in sorted(clean.glob("*.png")):
        pixels = np.asarray(Image.open(path)).copy()
        pixels[3:6, 3:9] = (255, 0, 255)
        Image.fromarray(pixels).save(damaged / path.name)
    rows = {}
    for kind in ("local", "dask"):
        executor = {"kind": kind} if kind == "local" else {
            "kind": "dask", "address": cluster.scheduler_address}
        job = tmp_path / f"{kind}.yaml"
        job.write_text(yaml.safe_dump({
            "job": "inpaint", "input": {"paths": [str(tmp_path / "damaged")],
                                        "recursive": True},
            "output": {"dir": str(tmp_path / kind)}, "backend": "cpu", "report": False,
            "metrics": ["psnr"], "inpaint": {"k": 3, "reference": str(tmp_path / "clean"),
                                             "key_tolerance": 0},
            "executor": executor}))
        run_cli(job)
        rows[kind] = without_timing(rows_of(tmp_path / kind), tmp_path / kind)
    assert rows["dask"] == rows["local"]
    assert all(row["psnr_missing"] > 10 and row["reference"] for row in rows["dask"].values())
