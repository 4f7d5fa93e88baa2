"""A run gives back what it takes: file handles and threads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from PIL import Image

from gpupix.config import load_config
from gpupix.pipeline import run_job
from tests import badfiles
from tests.conftest import gradient_image

FD_DIR = Path("/proc/self/fd")


def open_handles() -> int:
    return len(os.listdir(FD_DIR))


@pytest.mark.slow  # six runs
@pytest.mark.skipif(not FD_DIR.is_dir(), reason="needs /proc/self/fd (Linux) to count handles")
def test_no_file_handles_or_threads_leak(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(12):
        Image.fromarray(gradient_image(12, 14, seed=i)).save(images / f"ok{i}.png")
    (images / "zero.png").write_bytes(b"")
    badfiles.write(images / "cut.png", badfiles.truncated(
        badfiles.png_bytes(gradient_image(20, 20))))
    badfiles.write(images / "crc.png", badfiles.bad_crc_png(gradient_image(6, 6)))
    badfiles.write(images / "bomb.png", badfiles.bomb_png())
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out",
                                                                       "overwrite": True},
        "backend": "cpu", "batch": {"size": 2, "io_workers": 3}, "quantize": {"k": 4}}))
    config = load_config(job)
    run_job(config)  # warm-up: lazy imports may open what they keep for the process
    handles, threads = open_handles(), threading.active_count()
    for _ in range(3):
        result = run_job(config)
        assert result.counts["ok"] == 12 and result.counts["failed"] == 4
    assert open_handles() == handles
    assert threading.active_count() == threads
