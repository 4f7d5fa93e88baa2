"""``make gpu-check``: prove the cuda backend on a machine with a CUDA GPU, in one command.

    python benchmarks/gpu_check.py [--out out/gpu-check.json] [--quick]

1. the gpu-marked tests (``pytest -m gpu``) with the real CuPy and cuML;
2. agreement: every job kind run on the cpu and the cuda backend over the same images, the
   outputs compared within the tolerances stated in ``TOLERANCES``;
3. benchmarks side by side, interleaved in one run: cpu vs cuda for quantize, inpaint and
   denoise, and libimagequant (pngquant's library) for quantize.

Writes a small JSON of figures (``--out``) and exits 1 when a test or an agreement check
fails. Budget: under 10 minutes on one GPU (each stage has its own deadline and records it
when it runs out). Without a usable CUDA device it prints why and exits 0: nothing to check.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from gpupix.backends import CpuBackend, CudaBackend  # noqa: E402

TEST_BUDGET_S = 300  # pytest -m gpu
BENCH_REPEATS = 3

# How close the cuda run must come to the cpu run, per job (outputs over all images):
#   identical: byte-identical outputs; max_diff/diff_fraction: largest per-value difference
#   and share of values that differ; psnr_gap: PSNR vs the input, cuda at most this far below
#   cpu (K-means on the two backends draws its seeds from different generators).
TOLERANCES: dict[str, dict[str, float]] = {
    "corrupt": {"identical": 1},  # masks and noise are drawn on the host
    "inpaint": {"max_diff": 1, "diff_fraction": 0.001},  # float32 sums in another order
    "denoise": {"max_diff": 2, "diff_fraction": 0.01},
    "denoise_model": {"max_diff": 2, "diff_fraction": 0.01},
    "fit_denoiser": {"row_psnr_gap": 0.1},  # scored on held-out images in its rows
    "quantize": {"psnr_gap": 0.5},
    "quantize_shared": {"psnr_gap": 0.5},
    "quantize_auto": {"psnr_gap": 1.0},  # also a different k may be chosen
}

JOB_SPECS: dict[str, dict] = {
    "quantize": dict(job="quantize", input={"paths": ["images"]}, quantize={"k": 16},
                     metrics=["psnr"]),
    "quantize_shared": dict(job="quantize", input={"paths": ["images"]},
                            quantize={"k": 16, "palette": "shared"}, metrics=["psnr"]),
    "quantize_auto": dict(job="quantize", input={"paths": ["images"]},
                          quantize={"k": "auto", "target": {"psnr": 32}, "max_k": 64},
                          metrics=["psnr"]),
    "corrupt": dict(job="corrupt", input={"paths": ["images"]},
                    corrupt={"drop": 0.3, "holes": {"count": 2, "size": 16}}),
    "inpaint": dict(job="inpaint", input={"paths": ["out_corrupt_cpu"]},
                    inpaint={"k": "auto", "method": "knn_linear", "reference": "images"},
                    metrics=["psnr"]),
    "denoise": dict(job="denoise", input={"paths": ["images"]},
                    denoise={"method": "self", "noise": {"kind": "gaussian", "sigma": 25}},
                    metrics=["psnr"]),
    "fit_denoiser": dict(job="fit_denoiser", input={"paths": ["glyphs"]},
                         output={"overwrite": True},
                         fit_denoiser={"kind": "whole", "copies": 2, "components": 16, "k": 10,
                                       "noise": {"kind": "gaussian", "sigma": 50}}),
    "denoise_model": dict(job="denoise", input={"paths": ["glyphs"]},
                          denoise={"method": "model", "model": "out_fit_denoiser_cpu/model.npz",
                                   "noise": {"kind": "gaussian", "sigma": 50}},
                          metrics=["psnr"]),
}


def write_inputs(folder: Path, *, quick: bool) -> None:
    """A few photos (the repository's examples, resized) and 8x8 glyphs for the denoiser."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = sorted((ROOT / "examples").glob("*.png"))[:2 if quick else 4]
    for path in names:
        picture = Image.open(path).convert("RGB")
        picture.thumbnail((96, 96) if quick else (192, 192))
        picture.save(images / path.name)
    glyphs = folder / "glyphs"
    glyphs.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        tile = np.zeros((8, 8), np.uint8)
        y, x = rng.integers(0, 5, 2)
        tile[y:y + 3, x:x + 3] = 255
        Image.fromarray(tile).save(glyphs / f"g{i:02d}.png")


def _run_job(folder: Path, name: str, backend) -> tuple[dict[str, np.ndarray], list[dict]]:
    from gpupix.config import load_config
    from gpupix.pipeline import run_job

    spec = yaml.safe_load(yaml.safe_dump(JOB_SPECS[name]))
    spec.setdefault("output", {})["dir"] = f"out_{name}_{backend.name}"
    path = folder / f"{name}_{backend.name}.yaml"
    path.write_text(yaml.safe_dump({"backend": "cpu", "seed": 0,
                                    "executor": {"kind": "local"}, **spec}))
    summary = run_job(load_config(path), backend=backend)
    bad = [row for row in summary.rows if row.get("status") != "ok"]
    if bad or not summary.rows:
        raise RuntimeError(f"{name} on {backend.name}: {bad or 'no rows'}")
    outputs = {p.name: np.asarray(Image.open(p).convert("RGBA"))
               for p in sorted(summary.output_dir.glob("*.png"))}
    return outputs, summary.rows


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def compare(name: str, folder: Path, cpu: tuple, cuda: tuple) -> dict:
    """Figures of one job's cuda run against its cpu run, and whether they are within
    ``TOLERANCES[name]``."""
    (cpu_out, cpu_rows), (cuda_out, cuda_rows) = cpu, cuda
    tolerance = TOLERANCES[name]
    figures: dict = {"outputs": len(cpu_out)}
    ok = cpu_out.keys() == cuda_out.keys()
    if cpu_out:
        diffs = [np.abs(cpu_out[f][..., :3].astype(int) - cuda_out[f][..., :3]) for f in cpu_out
                 if f in cuda_out]
        values = sum(d.size for d in diffs)
        figures["max_diff"] = int(max(int(d.max()) for d in diffs))
        figures["diff_fraction"] = round(sum(int((d > 0).sum()) for d in diffs) / values, 6)
    if "identical" in tolerance:
        ok &= figures.get("max_diff", 0) == 0
    if "max_diff" in tolerance:
        ok &= figures["max_diff"] <= tolerance["max_diff"]
        ok &= figures["diff_fraction"] <= tolerance["diff_fraction"]
    if "psnr_gap" in tolerance:
        gaps = []
        for file in cpu_out:
            if not (folder / "images" / file).is_file():  # palette.png of a shared palette
                continue
            source = np.asarray(Image.open(folder / "images" / file).convert("RGB"))
            gaps.append(_psnr(source, cpu_out[file][..., :3])
                        - _psnr(source, cuda_out[file][..., :3]))
        figures["psnr_gap"] = round(max(gaps), 4)
        ok &= figures["psnr_gap"] <= tolerance["psnr_gap"]
    if "row_psnr_gap" in tolerance:
        cpu_psnr = [row["psnr"] for row in cpu_rows if "psnr" in row]
        cuda_psnr = [row["psnr"] for row in cuda_rows if "psnr" in row]
        gap = max((abs(a - b) for a, b in zip(cpu_psnr, cuda_psnr, strict=True)), default=0.0)
        figures["row_psnr_gap"] = round(gap, 4)
        ok &= bool(cpu_psnr) and gap <= tolerance["row_psnr_gap"]
    figures["within_tolerance"] = bool(ok)
    figures["tolerance"] = tolerance
    return figures


def agreement(backend, folder: Path, *, quick: bool = False) -> dict[str, dict]:
    """Every job kind on the cpu backend and on ``backend``; figures per job."""
    write_inputs(folder, quick=quick)
    results = {}
    for name in JOB_SPECS:  # in order: corrupt feeds inpaint, fit_denoiser denoise_model
        cpu = _run_job(folder, name, CpuBackend())
        other = _run_job(folder, name, backend)
        results[name] = compare(name, folder, cpu, other)
    return results


def run_gpu_tests(deadline_s: float) -> dict:
    """``pytest -m gpu``: counts from its summary line."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu",
                               "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True,
                              text=True, timeout=deadline_s)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {deadline_s:.0f} s", "ok": False}
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                     last)}
    return {"summary": last, **counts, "seconds": round(time.perf_counter() - start, 1),
            "ok": done.returncode == 0}


def _median_time(function, backend, repeats: int) -> float:
    function()  # warm-up: kernels compile, caches fill
    backend.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def benchmarks(backends: list, *, side: int = 1024) -> dict[str, dict]:
    """Seconds per call, backends interleaved case by case; libimagequant for quantize."""
    from gpupix.ops.denoise import denoise_self_knn
    from gpupix.ops.inpaint import inpaint
    from gpupix.ops.quantize import quantize

    picture = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    image = np.asarray(picture.resize((side, side), Image.LANCZOS))
    missing = np.random.default_rng(0).random((side, side)) < 0.5
    small = np.ascontiguousarray(image[: side // 2, : side // 2])
    figures: dict[str, dict] = {}
    cases = {
        f"quantize k=16 {side}x{side}": lambda b, d: quantize(d["image"], k=16, backend=b,
                                                              seed=0),
        f"inpaint knn_linear k=8 {side}x{side} 50% missing": lambda b, d: inpaint(
            d["image"], d["missing"], backend=b, k=8, method="knn_linear"),
        f"denoise self-knn {side // 2}x{side // 2}": lambda b, d: denoise_self_knn(
            b.xp.astype(d["small"], b.xp.float32), backend=b),
    }
    for label, case in cases.items():
        row = {}
        for backend in backends:
            data = {"image": backend.to_device(image), "missing": backend.to_device(missing),
                    "small": backend.to_device(small)}
            row[backend.name] = round(_median_time(
                lambda b=backend, d=data, c=case: c(b, d), backend, BENCH_REPEATS), 4)
        if "quantize" in label:
            try:
                import imagequant

                pil = Image.fromarray(image)
                row["libimagequant"] = round(_median_time(
                    lambda p=pil: imagequant.quantize_pil_image(p, dithering_level=0.0,
                                                                max_colors=16),
                    CpuBackend(), BENCH_REPEATS), 4)
            except ImportError:
                row["libimagequant"] = None
        if "cpu" in row and "cuda" in row:
            row["cpu_over_cuda"] = round(row["cpu"] / row["cuda"], 2)
        figures[label] = row
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "gpu-check.json"))
    parser.add_argument("--quick", action="store_true", help="smaller images (a smoke run)")
    args = parser.parse_args(argv)
    reason = CudaBackend.unavailable_reason()
    if reason is not None:
        print(f"gpu-check: SKIPPED: the cuda backend cannot run here ({reason}). "
              "Run `make gpu-check` on a machine with an NVIDIA GPU.")
        return 0
    started = time.perf_counter()
    cuda = CudaBackend()
    report: dict = {"device": cuda.describe(), "python": platform.python_version()}
    print("gpu-check: gpu-marked tests ...", flush=True)
    report["gpu_tests"] = run_gpu_tests(TEST_BUDGET_S)
    print(f"gpu-check: {report['gpu_tests'].get('summary', report['gpu_tests'])}", flush=True)
    print("gpu-check: cuda vs cpu agreement, every job kind ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report["agreement"] = agreement(cuda, Path(tmp), quick=args.quick)
    for name, figures in report["agreement"].items():
        print(f"  {name:16s} {'ok' if figures['within_tolerance'] else 'OUTSIDE TOLERANCE'} "
              f"{ {k: v for k, v in figures.items() if k not in ('tolerance',)} }")
    print("gpu-check: benchmarks (seconds, median of 3 after a warm-up) ...", flush=True)
    report["benchmarks"] = benchmarks([CpuBackend(), cuda], side=256 if args.quick else 1024)
    for label, row in report["benchmarks"].items():
        print(f"  {label}: {row}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"gpu-check: wrote {out} ({report['seconds']} s)")
    ok = report["gpu_tests"].get("ok", False) and all(
        f["within_tolerance"] for f in report["agreement"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
