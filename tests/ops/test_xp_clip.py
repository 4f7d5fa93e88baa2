"""``_xp.clip``: the array-API clip on maximum/minimum, and no op using ``xp.clip``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from gpupix.ops._xp import clip

PACKAGE = Path(__file__).resolve().parents[2] / "gpupix"


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.5, None), (None, 0.25), (None, None)])
def test_clip_matches_numpy_with_scalar_bounds(xp, bounds):
    values = np.array([-1.0, 0.2, 0.5, 3.0, np.nan], np.float32)
    out = clip(xp.asarray(values), *bounds)
    assert out.dtype == xp.float32
    expected = values if bounds == (None, None) else np.clip(values, *bounds)
    np.testing.assert_array_equal(np.from_dlpack(out), expected)  # NaN stays NaN


def test_clip_with_array_bounds_and_integers(xp):
    values = xp.asarray(np.array([[-3.0, 0.0, 4.0]], np.float32))
    bound = xp.asarray(np.array([1.0, 2.0, 3.0], np.float32))
    np.testing.assert_array_equal(np.from_dlpack(clip(values, -bound, bound)),
                                  [[-1.0, 0.0, 3.0]])
    ints = clip(xp.asarray(np.array([-2, 5, 9])), min=0, max=6)
    assert ints.dtype == xp.int64
    np.testing.assert_array_equal(np.from_dlpack(ints), [0, 5, 6])


def test_no_module_calls_the_namespace_clip():
    """array-api-compat's generic clip (CuPy's) assigns through boolean masks, each a wait
    for the device; the package uses ``_xp.clip`` instead."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "clip" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "xp"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []
