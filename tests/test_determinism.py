"""Same config, seed and backend: byte-identical outputs and metrics, whatever the batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gpupix.config import load_config
from gpupix.pipeline import run_job
from tests.conftest import few_colour_image, gradient_image

TIMING = {"seconds"}
SUMMARY_TIMING = {"wall_seconds", "images_per_second"}


def varied_images(folder: Path) -> None:
    folder.mkdir()
    for i in range(2):
        Image.fromarray(gradient_image(20 + 7 * i, 33, seed=i)).save(folder / f"grad{i}.png")
    rgba = np.dstack([gradient_image(18, 18, seed=9), np.full((18, 18), 255, np.uint8)])
    rgba[:6, :, 3] = 0
    Image.fromarray(rgba).save(folder / "alpha.png")
    Image.fromarray(few_colour_image(5)[0]).save(folder / "few.png")
    Image.fromarray(gradient_image(16, 16)).convert("L").save(folder / "grey.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")


def run_with(tmp_path: Path, name: str, batch: dict) -> tuple[dict[str, bytes], list, dict]:
    job = tmp_path / f"{name}.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": name},
        "backend": "cpu", "batch": batch, "seed": 7, "quantize": {"k": 6},
        "metrics": ["psnr", "rmse", "delta_e", "ssim"]}))
    result = run_job(load_config(job))
    out = tmp_path / name
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}
    rows = [{k: v for k, v in row.items() if k not in TIMING} | {
        "output": Path(row["output"]).name}
        for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_TIMING:
        summary.pop(key)
    summary["means"].pop("seconds")
    summary["config"].pop("batch")
    summary["config"]["output"].pop("dir")
    assert result.counts == {"ok": 5, "skipped": 0, "failed": 1}
    return files, rows, summary


@pytest.mark.slow
def test_outputs_and_metrics_do_not_depend_on_runs_or_batching(tmp_path):
    varied_images(tmp_path / "images")
    reference = run_with(tmp_path, "reference", {"size": 16, "prefetch": 2, "io_workers": 2})
    assert len(reference[0]) == 5
    variants = {
        "again": {"size": 16, "prefetch": 2, "io_workers": 2},
        "one-at-a-time": {"size": 1, "prefetch": 0, "io_workers": 1},
        "odd-batches": {"size": 3, "prefetch": 1, "io_workers": 4},
        "one-compute-thread": {"size": 16, "prefetch": 2, "io_workers": 2,
                               "compute_workers": 1},
        "three-compute-threads": {"size": 2, "prefetch": 1, "io_workers": 1,
                                  "compute_workers": 3},
        "small-byte-budget": {"size": 16, "prefetch": 2, "io_workers": 2,
                              "compute_workers": 2, "read_ahead_bytes": 1 << 20},
        "worker-processes": {"compute_workers": 2, "pool": "processes"},
    }
    for name, batch in variants.items():
        files, rows, summary = run_with(tmp_path, name, batch)
        assert sorted(files) == sorted(reference[0]), name
        for output, data in reference[0].items():
            assert files[output] == data, f"{name}: {output} differs"
        assert rows == reference[1], name
        assert summary == reference[2], name


EVERY_JOB = {
    "quantize k auto": {"job": "quantize", "quantize": {"k": "auto", "target": {"psnr": 30}}},
    "quantize shared, dithered": {"job": "quantize", "quantize": {
        "k": 8, "palette": "shared", "dither": {"floyd_steinberg": 0.8}}},
    "denoise self, noise": {"job": "denoise", "denoise": {
        "method": "self", "noise": {"kind": "gaussian", "sigma": 20}, "difference": True}},
    "denoise global": {"job": "denoise", "denoise": {"method": "self", "search": "global"}},
    "corrupt": {"job": "corrupt", "corrupt": {"drop": 0.3, "holes": {"count": 1, "size": 6},
                                              "noise": "gaussian"}},
    "inpaint": {"job": "inpaint", "inpaint": {"mask": "alpha", "k": "auto"}},
}


@pytest.mark.slow  # every job kind, three batchings
@pytest.mark.parametrize("settings", EVERY_JOB.values(), ids=list(EVERY_JOB))
def test_every_job_is_deterministic_across_batching(tmp_path, settings):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        rgba = np.dstack([gradient_image(22, 26, seed=i), np.full((22, 26), 255, np.uint8)])
        rgba[5 + i:9 + i, 4:10, 3] = 0  # a hole for inpaint's alpha mask
        Image.fromarray(rgba).save(folder / f"img{i}.png")
    results = []
    for name, batch in (("a", {"size": 16, "prefetch": 2, "io_workers": 2,
                               "compute_workers": 1}),
                        ("b", {"size": 1, "prefetch": 0, "io_workers": 3,
                               "compute_workers": 3}),
                        ("c", {"compute_workers": 2, "pool": "processes"})):
        job = tmp_path / f"{name}.yaml"
        job.write_text(yaml.safe_dump({
            "input": {"paths": ["images"]}, "output": {"dir": name}, "backend": "cpu",
            "batch": batch, "seed": 3, **settings}))
        summary = run_job(load_config(job))
        assert summary.counts["failed"] == 0, summary.rows
        out = tmp_path / name
        files = {p.name: p.read_bytes() for p in sorted(out.iterdir())  # report: timings
                 if p.name not in ("metrics.jsonl", "summary.json", "report.html", "report")}
        rows = [{k: v for k, v in row.items() if k not in TIMING}
                for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
        for row in rows:
            for key in ("output", "outputs"):
                if key in row:
                    row[key] = str(row[key]).replace(str(out), "<out>")
        results.append((files, rows))
    (files_a, rows_a), *others = results
    assert files_a
    for files_b, rows_b in others:
        assert sorted(files_a) == sorted(files_b)
        for output, data in files_a.items():
            assert files_b[output] == data, f"{output} differs"
        assert rows_a == rows_b
