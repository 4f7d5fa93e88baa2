"""Host-device traffic of each job on the cuda backend's glue (CPU stand-ins for CuPy/cuML).

Every ``backend.to_device``/``to_host`` call and its bytes are counted: what each job needs
for one image is the decoded pixels (and masks) going up once and the results coming down
once; metrics use the device copies already there.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gpupix.config import load_config
from gpupix.pipeline import run_job
from tests.conftest import gradient_image


def _run(tmp_path: Path, backend, **spec) -> dict[str, int]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    image = gradient_image(32, 40)
    Image.fromarray(image).save(images / "a.png")
    if spec["job"] == "inpaint":
        damaged = tmp_path / "damaged"
        damaged.mkdir(exist_ok=True)
        missing = np.random.default_rng(0).random(image.shape[:2]) < 0.3
        Image.fromarray(np.where(missing[..., None], 0, image).astype(np.uint8)).save(
            damaged / "a.png")
        Image.fromarray((missing * 255).astype(np.uint8)).save(damaged / "a.mask.png")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"backend": "cpu", "seed": 0, "output": {"dir": "out"},
                                    "executor": {"kind": "local"}, **spec}))
    counts = collections.Counter()
    to_device, to_host = backend.to_device, backend.to_host

    def upload(a):
        counts["upload"] += 1
        counts["upload_bytes"] += np.asarray(a).nbytes
        return to_device(a)

    def download(x):
        counts["download"] += 1
        return to_host(x)

    backend.to_device, backend.to_host = upload, download
    summary = run_job(load_config(path), backend=backend)
    assert [row["status"] for row in summary.rows] == ["ok"], summary.rows
    return dict(counts)


PIXELS = 32 * 40 * 3  # bytes of the test image


@pytest.mark.parametrize("spec, expected", [
    # the pixels up once (the metrics read the device copies of the image, palette and
    # indices); palette and indices down
    (dict(job="quantize", input={"paths": ["images"]}, quantize={"k": 8},
          metrics=["psnr", "ssim"]),
     {"upload": 1, "upload_bytes": PIXELS, "download": 2}),
    # k: auto as well: the search's palette and indices stay on the device for the metrics;
    # each of its two warm-started fits draws its new entries on the host (one download of
    # the scores, one upload of the chosen bins' indices: 229 int64 in all here)
    (dict(job="quantize", input={"paths": ["images"]},
          quantize={"k": "auto", "target": {"psnr": 30}}, metrics=["psnr", "delta_e"]),
     {"upload": 3, "upload_bytes": PIXELS + 229 * 8, "download": 4}),
    # pixels and the noise draws (float32) up; the result and the noisy image down
    (dict(job="denoise", input={"paths": ["images"]},
          denoise={"method": "self", "noise": {"kind": "gaussian", "sigma": 20}},
          metrics=["psnr", "ssim"]),
     {"upload": 2, "upload_bytes": PIXELS + 4 * PIXELS, "download": 2}),
    # pixels, mask, usable pixels and the reference up once each; the fill down
    (dict(job="inpaint", input={"paths": ["damaged"]},
          inpaint={"k": 6, "method": "knn", "reference": "images"},
          metrics=["psnr", "ssim"]),
     {"upload": 4, "upload_bytes": 2 * PIXELS + 2 * PIXELS // 3, "download": 1}),
])
def test_each_job_moves_each_array_once(tmp_path, fake_cuda, spec, expected):
    assert _run(tmp_path, fake_cuda, **spec) == expected
