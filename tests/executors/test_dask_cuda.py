"""The cuda backend's Dask cluster: n_workers past the visible GPUs is a config error."""

from __future__ import annotations

import sys
import types

import pytest

from gpupix.errors import ConfigError

pytest.importorskip("distributed", reason="the dask extra is not installed")

from gpupix.executors.dask import DaskExecutor  # noqa: E402


@pytest.fixture
def two_gpu_dask_cuda(monkeypatch):
    """dask_cuda with 2 visible GPUs; its cluster fails the way the real one does past them."""
    started = []

    class LocalCUDACluster:
        def __init__(self, *, n_workers=None, **kwargs):
            if n_workers is not None and n_workers > 2:
                raise ValueError("Can not scale beyond visible devices", [0, 1])
            started.append(n_workers)
            raise RuntimeError("stop here: the cluster would start")

    package = types.ModuleType("dask_cuda")
    package.LocalCUDACluster = LocalCUDACluster
    utils = types.ModuleType("dask_cuda.utils")
    utils.get_n_gpus = lambda: 2
    package.utils = utils
    monkeypatch.setitem(sys.modules, "dask_cuda", package)
    monkeypatch.setitem(sys.modules, "dask_cuda.utils", utils)
    return started


def test_more_workers_than_gpus_is_a_one_line_config_error(two_gpu_dask_cuda):
    backend = types.SimpleNamespace(name="cuda")
    with pytest.raises(ConfigError, match=r"executor.n_workers: 3 is more than the 2 visible"):
        DaskExecutor(n_workers=3)._connect(backend)
    assert two_gpu_dask_cuda == []


@pytest.mark.parametrize("n_workers", [None, 2])
def test_workers_within_the_gpu_count_reach_the_cluster(two_gpu_dask_cuda, n_workers):
    with pytest.raises(RuntimeError, match="stop here"):
        DaskExecutor(n_workers=n_workers)._connect(types.SimpleNamespace(name="cuda"))
    assert two_gpu_dask_cuda == [n_workers]
