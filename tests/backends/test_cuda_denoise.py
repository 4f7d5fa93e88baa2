"""The denoising ops through the cuda backend's glue, with CPU stand-ins for CuPy and cuML."""


import numpy as np

from gpupix.backends import CpuBackend
from gpupix.ops.denoise import denoise_self_knn, fit_knn_denoiser, predict


def test_learned_model_through_cuml_neighbours(fake_cuda):
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (300, 20)).astype(np.float32)
    noisy = clean + rng.normal(0, 30, clean.shape).astype(np.float32)
    results = []
    for backend in (CpuBackend(), fake_cuda):
        model = fit_knn_denoiser(backend.to_device(noisy), backend.to_device(clean),
                                 components=8, k=10)
        results.append(backend.to_host(predict(model, backend.to_device(noisy[:40]),
                                               backend=backend, batch=16)))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-3, atol=0.05)


def test_global_self_search_through_cuml_neighbours(fake_cuda):
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (24, 20, 3)).astype(np.float32)
    cpu = denoise_self_knn(image, backend=CpuBackend(), tile=16)
    gpu = denoise_self_knn(fake_cuda.to_device(image), backend=fake_cuda, tile=16)
    np.testing.assert_allclose(fake_cuda.to_host(gpu.image), cpu.image, atol=0.05)
