"""The local executor: several images computed at once, read-ahead bounded by decoded bytes."""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gpupix.backends import CpuBackend
from gpupix.config import ConfigError, load_config
from gpupix.executors import local
from gpupix.executors.processes import PROCESS_MIN_IMAGES_PER_WORKER, can_fork, wants_processes
from gpupix.io import InputItem
from gpupix.jobs.quantize import QuantizeJob
from gpupix.pipeline import run_job

SIDE = 1500  # one-colour PNGs of a few KB that decode to 6.75 MB each


class LiveBytes:
    """Bytes of decoded pixel arrays alive at once (a finalizer per array), and the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live = self.peak = 0

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.live += nbytes
            self.peak = max(self.peak, self.live)

    def drop(self, nbytes: int) -> None:
        with self.lock:
            self.live -= nbytes


def run_counting(tmp_path, monkeypatch, budget: int | None) -> LiveBytes:
    folder = tmp_path / "big"
    if not folder.exists():
        folder.mkdir()
        for i in range(8):
            Image.new("RGB", (SIDE, SIDE), (10 * i, 80, 200)).save(folder / f"one{i}.png")
    counter = LiveBytes()
    decode = local.decode

    def counted_decode(path, **kwargs):
        image = decode(path, **kwargs)
        counter.add(image.pixels.nbytes)
        weakref.finalize(image.pixels, counter.drop, image.pixels.nbytes)
        return image

    process = QuantizeJob.process

    def slow_process(self, item, image, backend):  # compute slower than decode: the window fills
        time.sleep(0.15)
        return process(self, item, image, backend)

    monkeypatch.setattr(local, "decode", counted_decode)
    monkeypatch.setattr(QuantizeJob, "process", slow_process)
    # threads: the read-ahead window is theirs (worker processes read their own image)
    batch = {"size": 16, "prefetch": 2, "io_workers": 2, "compute_workers": 2, "pool": "threads"}
    if budget is not None:
        batch["read_ahead_bytes"] = budget
    name = f"out{budget}"
    job = tmp_path / f"{name}.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(folder)]}, "output": {"dir": name},
        "backend": "cpu", "batch": batch, "quantize": {"k": 4}, "metrics": [],
        "report": False}))
    result = run_job(load_config(job))
    assert result.counts["ok"] == 8
    return counter


@pytest.mark.slow  # sleeps to fill the window
def test_read_ahead_holds_decoded_bytes_within_the_budget(tmp_path, monkeypatch):
    image_bytes = SIDE * SIDE * 3
    budget = 20 << 20  # admits two images (each counted as RGBA from its header)
    bounded = run_counting(tmp_path, monkeypatch, budget)
    assert 0 < bounded.peak <= budget
    assert bounded.peak <= 2 * image_bytes
    # the counter can tell: with the default budget (1 GiB) the eight images pile up
    unbounded = run_counting(tmp_path, monkeypatch, None)
    assert unbounded.peak > 2 * image_bytes


def test_an_image_larger_than_the_budget_runs_alone(tmp_path):
    window = local._ByteWindow(100)
    assert window.fits(500)
    window.take(500)
    assert not window.fits(1)
    window.give(500)
    assert window.fits(60)


def test_decoded_bytes_reads_the_header_only(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "a.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert local.decoded_bytes(tmp_path / "a.png") == 300 * 200 * 4
    assert local.decoded_bytes(tmp_path / "junk.png") == 0
    assert local.decoded_bytes(tmp_path / "missing.png") == 0


def test_compute_threads_share_the_cores():
    from gpupix.backends import CpuBackend

    executor = local.LocalExecutor(compute_workers=None)
    workers, per_call = executor.threads_for(CpuBackend())
    assert workers == local.usable_cores() and per_call == 1
    workers, per_call = local.LocalExecutor(compute_workers=1).threads_for(CpuBackend())
    assert workers == 1 and per_call == local.usable_cores()


@pytest.mark.parametrize("value", [0, 1000, "lots"])
def test_read_ahead_budget_is_validated(tmp_path, value):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": ["x"]}, "output": {"dir": "out"},
        "batch": {"read_ahead_bytes": value}}))
    with pytest.raises(ConfigError, match="read_ahead_bytes"):
        load_config(job)


def test_compute_threads_give_the_same_rows_as_one(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(
            folder / f"n{i}.png")
    rows = {}
    for workers in (1, 4):
        job = tmp_path / f"w{workers}.yaml"
        job.write_text(yaml.safe_dump({
            "job": "quantize", "input": {"paths": [str(folder)]}, "output": {
                "dir": f"w{workers}"}, "backend": "cpu", "quantize": {"k": 8},
            "batch": {"compute_workers": workers}, "report": False}))
        run_job(load_config(job))
        lines = (tmp_path / f"w{workers}" / "metrics.jsonl").read_text().splitlines()
        rows[workers] = [{k: v for k, v in json.loads(line).items()
                          if k not in ("seconds", "output")} for line in lines]
        for output in sorted((tmp_path / f"w{workers}").glob("*.png")):
            rows[workers].append(output.read_bytes())
    assert rows[1] == rows[4]


def test_a_rows_seconds_count_its_decode_once(tmp_path, monkeypatch):
    """seconds = decode + compute + write of that image, each once (a slow decoder shows once,
    not also as time waited for it in the compute step)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    slow = local.decode

    def slow_decode(path, **options):
        time.sleep(1.0)
        return slow(path, **options)

    monkeypatch.setattr(local, "decode", slow_decode)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(folder)]},
        "output": {"dir": str(tmp_path / "out")}, "backend": "cpu", "report": False,
        "metrics": [], "batch": {"io_workers": 3, "compute_workers": 1}}))
    result = run_job(load_config(job))
    seconds = [row["seconds"] for row in result.rows]
    # the 1 s decode counted once (twice would be 2 s or more)
    assert all(1.0 <= s < 1.9 for s in seconds), seconds


def _noise_folder(folder, count: int, side: int = 24) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side + 6, 3), dtype=np.uint8)).save(
            folder / f"n{i:02d}.png")


def _rows_and_bytes(out) -> list:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    rows: list = [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "output")}
                  for line in lines]
    return rows + [p.read_bytes() for p in sorted(out.glob("*.png"))]


@pytest.mark.skipif(not can_fork(), reason="worker processes are forked")
def test_worker_processes_give_the_rows_and_bytes_of_threads(tmp_path):
    _noise_folder(tmp_path / "images", 10)
    results = {}
    for pool in ("threads", "processes"):
        job = tmp_path / f"{pool}.yaml"
        job.write_text(yaml.safe_dump({
            "job": "quantize", "input": {"paths": [str(tmp_path / "images")]},
            "output": {"dir": pool}, "backend": "cpu", "quantize": {"k": 8},
            "batch": {"compute_workers": 2, "pool": pool}, "report": False}))
        run_job(load_config(job))
        results[pool] = _rows_and_bytes(tmp_path / pool)
    assert len(results["threads"]) == 20
    assert results["threads"] == results["processes"]


def test_auto_pool_is_processes_for_a_folder_on_cpu_only():
    cpu = CpuBackend()

    class Device:
        name = "cuda"

    many = PROCESS_MIN_IMAGES_PER_WORKER * 2
    assert wants_processes("auto", cpu, 2, many) == can_fork()
    assert not wants_processes("auto", cpu, 2, many - 1)  # a few images: threads
    assert not wants_processes("auto", cpu, 1, 100)  # one worker: nothing to share
    assert not wants_processes("auto", Device(), 2, 100)  # one device, one process
    assert not wants_processes("threads", cpu, 2, 100)
    assert wants_processes("processes", cpu, 2, 1) == can_fork()


class _DyingJob(QuantizeJob):
    """Quantize, but the worker computing an image named ``die*`` ends on the spot."""

    def process(self, item, image, backend):
        if item is not None and item.path.name.startswith("die"):
            os._exit(9)
        return super().process(item, image, backend)


@pytest.mark.skipif(not can_fork(), reason="worker processes are forked")
def test_a_worker_that_dies_fails_only_its_image(tmp_path):
    folder = tmp_path / "images"
    _noise_folder(folder, 9)
    (folder / "n04.png").rename(folder / "die.png")
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(folder)]}, "output": {"dir": "out"},
        "backend": "cpu", "quantize": {"k": 8}, "metrics": [], "report": False,
        "batch": {"compute_workers": 2, "pool": "processes"}}))
    config = load_config(job_file)
    items = sorted(folder.glob("*.png"))
    work = [(InputItem(relative=Path(p.name), path=p), [tmp_path / "out" / p.name])
            for p in items]
    (tmp_path / "out").mkdir()
    executor = local.LocalExecutor(compute_workers=2, pool="processes")
    rows = list(executor.run(work, _DyingJob(config), CpuBackend()))
    assert [row["input"] for row in rows] == [str(p) for p in items]  # input order, all
    failed = [row for row in rows if row["status"] == "failed"]
    assert [row["input"] for row in failed] == [str(folder / "die.png")]
    assert "worker process died" in failed[0]["error"] and "die.png" in failed[0]["error"]
    assert sum(row["status"] == "ok" for row in rows) == 8
    assert not (tmp_path / "out" / "die.png").exists()


class _SlowJob(QuantizeJob):
    def process(self, item, image, backend):
        time.sleep(0.3)
        return super().process(item, image, backend)


@pytest.mark.skipif(not can_fork(), reason="worker processes are forked")
def test_a_stop_leaves_worker_processes_images_whole_or_absent(tmp_path):
    folder = tmp_path / "images"
    _noise_folder(folder, 12, side=64)
    config_file = tmp_path / "job.yaml"
    config_file.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(folder)]}, "output": {"dir": "out"},
        "backend": "cpu", "quantize": {"k": 8}, "metrics": [], "report": False}))
    config = load_config(config_file)
    out = tmp_path / "out"
    out.mkdir()
    work = [(InputItem(relative=Path(p.name), path=p), [out / p.name])
            for p in sorted(folder.glob("*.png"))]
    stop = threading.Event()
    executor = local.LocalExecutor(compute_workers=2, pool="processes", stop=stop)
    rows = []
    for row in executor.run(work, _SlowJob(config), CpuBackend()):
        rows.append(row)
        stop.set()  # after the first row: the images under way finish, no new one starts
    assert 1 <= len(rows) < 12
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == sorted(Path(row["input"]).name for row in rows)  # each with a row
    for name in written:
        with Image.open(out / name) as image:
            image.load()  # whole files only

