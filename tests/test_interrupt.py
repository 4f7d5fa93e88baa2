"""Stopping a run part-way: SIGINT, SIGTERM, a second signal, SIGKILL; then resuming.

After a signal the run stops within seconds, leaves only whole outputs and a valid
metrics.jsonl, exits 130 (SIGINT) or 143 (SIGTERM), and the same command then does exactly
the images that remain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gpupix.config import load_config
from gpupix.io import TEMP_PREFIX
from gpupix.pipeline import Reporter, run_job
from tests.helpers import metrics_rows as strict_rows

ROOT = Path(__file__).resolve().parents[1]


def make_batch(tmp_path: Path, count: int) -> Path:
    """``count`` small images of 64 colours each (so every one runs K-means)."""
    source = tmp_path / "images"
    source.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        levels = rng.integers(0, 4, (24, 24, 3)).astype(np.uint8) * 80
        Image.fromarray(levels).save(source / f"img{i:03d}.png")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out"},
        "backend": "cpu", "batch": {"size": 4, "prefetch": 1, "io_workers": 2},
        "quantize": {"k": 8}, "metrics": ["psnr"]}))
    return job


def leftovers(out_dir: Path) -> list[str]:
    return sorted(p.name for p in out_dir.rglob(f"{TEMP_PREFIX}*"))


def outputs(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("img*.png"))


def assert_outputs_whole(out_dir: Path) -> None:
    for path in outputs(out_dir):
        with Image.open(path) as image:
            image.load()  # a partial file would fail here


def start(job: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpupix.cli", "run", str(job), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_rows(process: subprocess.Popen, metrics: Path, rows: int, timeout: float = 120
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file() and metrics.read_text().count("\n") >= rows:
            return
        if process.poll() is not None:
            pytest.fail(f"run ended (rc {process.returncode}) before {rows} rows: "
                        f"{process.stderr.read()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no {rows} rows within {timeout}s")


# --- in-process: the stop event -----------------------------------------------------------------

class StopAfter(Reporter):
    """Sets ``stop`` once ``rows`` rows have been reported, as a signal handler would."""

    def __init__(self, stop: threading.Event, rows: int) -> None:
        self.stop, self.rows, self.seen = stop, rows, 0

    def advance(self, row: dict) -> None:
        self.seen += 1
        if self.seen >= self.rows:
            self.stop.set()


def test_stop_event_ends_cleanly_and_a_rerun_does_the_rest(tmp_path):
    job = make_batch(tmp_path, 24)
    config = load_config(job)
    stop = threading.Event()
    first = run_job(config, reporter=StopAfter(stop, 3), stop=stop)
    out = tmp_path / "out"
    done = first.counts["ok"]
    assert first.interrupted and 3 <= done < 24
    assert first.remaining == 24 - done  # in-flight writes finish and are counted
    assert len(outputs(out)) == done and leftovers(out) == []
    assert len(strict_rows(out)) == done
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["remaining"] == 24 - done
    second = run_job(config)
    assert not second.interrupted
    assert second.counts == {"ok": 24 - done, "skipped": done, "failed": 0}
    assert len(outputs(out)) == 24 and "interrupted" not in json.loads(
        (out / "summary.json").read_text())


def test_stop_before_start_processes_nothing(tmp_path):
    job = make_batch(tmp_path, 3)
    stop = threading.Event()
    stop.set()
    result = run_job(load_config(job), stop=stop)
    assert result.interrupted and result.remaining == 3 and result.rows == []
    assert outputs(tmp_path / "out") == []


# --- subprocesses: real signals --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_rerun_finishes_the_rest(tmp_path, signum):
    count = 48
    job = make_batch(tmp_path, count)
    out = tmp_path / "out"
    process = start(job)
    wait_for_rows(process, out / "metrics.jsonl", 2)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    latency = time.monotonic() - sent
    assert process.returncode == 128 + signum, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: interrupted by {signum.name}:")
    assert "rerun the same command" in lines[0]
    assert latency < 30, f"took {latency:.1f}s to stop"  # a hang guard, not a benchmark
    done = len(outputs(out))
    assert 2 <= done < count, done
    assert leftovers(out) == []
    assert_outputs_whole(out)
    rows = strict_rows(out)
    assert len(rows) == done and all(r["status"] == "ok" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["remaining"] == count - done

    rerun = start(job)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    statuses = [r["status"] for r in strict_rows(out)]
    assert statuses.count("ok") == count - done and statuses.count("skipped") == done
    assert len(outputs(out)) == count and leftovers(out) == []


@pytest.mark.slow
def test_second_signal_aborts_at_once_leaving_whole_files(tmp_path):
    job = make_batch(tmp_path, 30)
    out = tmp_path / "out"
    process = start(job)
    wait_for_rows(process, out / "metrics.jsonl", 2)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted by SIGINT")
    assert leftovers(out) == []
    assert_outputs_whole(out)
    assert len(strict_rows(out)) <= len(outputs(out))  # rows only for finished outputs


@pytest.mark.slow
def test_sigkill_leaves_only_temporaries_that_the_next_run_removes(tmp_path):
    count = 30
    job = make_batch(tmp_path, count)
    out = tmp_path / "out"
    process = start(job)
    wait_for_rows(process, out / "metrics.jsonl", 3)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert_outputs_whole(out)  # whatever was renamed into place is whole
    # what a kill during a write leaves (made here, as the kill's timing is luck)
    (out / f"{TEMP_PREFIX}abc123").write_bytes(b"half a png")
    (out / "sub").mkdir()
    (out / "sub" / f"{TEMP_PREFIX}def456").write_bytes(b"")
    written = len(outputs(out))
    recorded = 0  # rows whole before the kill; a torn last one does not count
    for line in (out / "metrics.jsonl").read_text().splitlines():
        try:
            recorded += json.loads(line)["status"] == "ok"
        except ValueError:
            pass
    rerun = start(job)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert leftovers(out) == []
    rows = strict_rows(out)  # a torn last line from the kill is gone
    assert len(rows) == count and len(outputs(out)) == count
    # an output whose row was recorded is skipped; one written just before the kill without
    # its row says nothing of how it was made, so it is redone
    assert sum(r["status"] == "skipped" for r in rows) == recorded
    summary = json.loads((out / "summary.json").read_text())
    assert summary["redone"] == written - recorded
    assert_outputs_whole(out)


def test_no_handler_is_left_installed_after_a_run(tmp_path):
    from typer.testing import CliRunner

    from gpupix.cli import app

    job = make_batch(tmp_path, 1)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert CliRunner().invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert os.listdir(tmp_path / "out")


def test_handler_stops_between_images_and_interrupts_elsewhere():
    from gpupix.cli import _stop_on_signals

    with _stop_on_signals() as (stop, received):
        # not between images (loading, a shared palette pass, a whole-set fit): at once
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here, in the main thread
        assert received == [signal.SIGTERM] and not stop.is_set()
        stop.between_images = True  # the executor is running: finish the images in flight
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.is_set() and received[-1] == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # a second signal: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
