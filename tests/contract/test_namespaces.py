"""Every array-namespace, CuPy and dask-cuda name gpupix uses exists in the real packages.

The names are collected from gpupix's source with ``ast``, not listed by hand: every
attribute chain on a name ``xp`` (the array namespace an op takes from its backend or its
arrays), every chain on ``cupy``/``self._cupy`` (the cuda backend's CuPy), and every
``from cupy/cupyx/cuml/dask_cuda... import`` in the package.
"""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from tests.contract._real import PACKAGE, binds, chain, parse, real, resolve, source_files

pytestmark = pytest.mark.contract

cupy = real("cupy")
xp_cupy = real("array_api_compat.cupy")

GPU_MODULES = ("cupy", "cupyx", "cuml", "dask_cuda")


def _xp_names() -> dict[str, list[str]]:
    """{"linalg.eigh": ["gpupix/ops/denoise.py:172", ...], ...} for every ``xp.<chain>``."""
    found: dict[str, list[str]] = {}
    for path in source_files():
        for node in ast.walk(_with_parents(parse(path))):
            if not isinstance(node, ast.Attribute) or isinstance(node.parent, ast.Attribute):
                continue  # the outermost attribute of a chain only
            parts = chain(node)
            if parts and parts[0] == "xp":
                found.setdefault(".".join(parts[1:]), []).append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def _with_parents(tree: ast.Module) -> ast.Module:
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child.parent = parent
    return tree


def _cupy_uses() -> tuple[set[str], list[tuple[str, ast.Call]]]:
    """Dotted names used on CuPy in the package, and the calls made through them."""
    names, calls = set(), []
    for path in source_files():
        tree = _with_parents(parse(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or isinstance(node.parent, ast.Attribute):
                continue
            parts = chain(node)
            if not parts:
                continue
            if parts[0] == "cupy":
                dotted = ".".join(parts[1:])
            elif parts[:2] == ["self", "_cupy"]:
                dotted = ".".join(parts[2:])
            else:
                continue
            if dotted:
                names.add(dotted)
                if isinstance(node.parent, ast.Call) and node.parent.func is node:
                    calls.append((dotted, node.parent))
    return names, calls


def test_the_collectors_see_the_package():
    names = _xp_names()
    assert {"astype", "take", "cumulative_sum", "float32"} <= names.keys()
    assert {"asarray", "asnumpy", "cuda.runtime.getDeviceCount"} <= _cupy_uses()[0]


def test_every_xp_name_exists_in_array_api_compat_cupy():
    missing = {}
    for dotted, places in sorted(_xp_names().items()):
        try:
            resolve(xp_cupy, dotted)
        except AttributeError:
            missing[dotted] = places
    assert missing == {}, f"not in array_api_compat.cupy: {missing}"


def test_every_cupy_name_exists_in_real_cupy():
    names, _ = _cupy_uses()
    missing = []
    for dotted in sorted(names):
        try:
            resolve(cupy, dotted)
        except AttributeError:
            missing.append(dotted)
    assert missing == []


def test_cupy_calls_bind_to_their_signatures():
    _, calls = _cupy_uses()
    problems = []
    for dotted, call in calls:
        function = resolve(cupy, dotted)
        try:
            inspect.signature(function)
        except (TypeError, ValueError):  # a Cython builtin without a signature
            continue
        args = tuple(None for _ in call.args)
        kwargs = {keyword.arg: None for keyword in call.keywords if keyword.arg}
        problem = binds(function, args, kwargs, method=False)
        if problem:
            problems.append(f"cupy.{dotted} at line {call.lineno}: {problem}")
    assert problems == []


def test_every_gpu_import_in_the_package_resolves():
    problems = []
    for path in source_files():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] in GPU_MODULES:
                module = importlib.import_module(node.module)
                problems += [f"{node.module}.{alias.name}" for alias in node.names
                             if not hasattr(module, alias.name)]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in GPU_MODULES:
                        importlib.import_module(alias.name)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == \
                    "import_module" and node.args and isinstance(node.args[0], ast.Constant):
                name = node.args[0].value
                if isinstance(name, str) and name.split(".")[0] in GPU_MODULES + (
                        "array_api_compat",):
                    importlib.import_module(name)
    assert problems == []


def test_the_local_cuda_cluster_takes_gpupix_options():
    """LocalCUDACluster takes n_workers/threads_per_worker and passes the rest on to
    distributed's LocalCluster through **kwargs."""
    dask_cuda = real("dask_cuda")
    from distributed import LocalCluster

    from gpupix.executors.dask import cluster_options

    own = inspect.signature(dask_cuda.LocalCUDACluster.__init__).parameters
    forwarded = inspect.signature(LocalCluster.__init__).parameters
    assert any(p.kind is p.VAR_KEYWORD for p in own.values())
    unknown = [key for key in cluster_options(2) if key not in own and key not in forwarded]
    assert unknown == []
    from dask_cuda.utils import get_n_gpus  # the count check_cuda_workers uses

    assert callable(get_n_gpus)


@pytest.mark.parametrize(("module", "name", "args", "kwargs", "method"), [
    # backends/cuda.py: box_mean
    ("cupyx.scipy.ndimage", "uniform_filter", (None,), {"size": None, "mode": None}, False),
    # backends/cuda.py: solve_sparse (a COO-style constructor, then one solve per channel)
    ("cupyx.scipy.sparse", "csr_matrix", ((None, (None, None)),), {"shape": None}, True),
    ("cupyx.scipy.sparse.linalg", "spsolve", (None, None), {}, False),
])
def test_the_cupyx_calls_of_the_cuda_backend_bind(module, name, args, kwargs, method):
    function = getattr(importlib.import_module(module), name)
    target = function.__init__ if method else function
    assert binds(target, args, kwargs, method=method) is None
