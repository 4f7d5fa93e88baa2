"""The real GPU packages, or a skip (a failure under ``make test-contract``).

``import cuml`` and ``import cupy`` succeed without a GPU, so these tests need only the
wheels, which ``make contract-env`` installs outside the clone.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
from pathlib import Path
from types import ModuleType

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gpupix"
REQUIRED = os.environ.get("GPUPIX_CONTRACT_REQUIRED") == "1"  # set by make test-contract


def real(name: str) -> ModuleType:
    """Import ``name`` from the real packages, or skip the module with the reason."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a missing wheel, or a broken CUDA install raising at import
        if REQUIRED:
            raise
        pytest.skip(f"{name} does not import here ({type(exc).__name__}: {exc}); "
                    "`make test-contract` installs the pinned GPU stack",
                    allow_module_level=True)


def resolve(root: object, dotted: str) -> object:
    """``root.a.b.c`` for ``dotted`` = "a.b.c"; AttributeError names the missing part."""
    value = root
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def chain(node: ast.AST) -> list[str] | None:
    """["self", "_cupy", "cuda", "Device"] for ``self._cupy.cuda.Device``; None otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def binds(function: object, args: tuple, kwargs: dict, *, method: bool) -> str | None:
    """None when ``function(*args, **kwargs)`` binds to its signature; else why not."""
    signature = inspect.signature(function)
    try:
        signature.bind(*((None,) if method else ()), *args, **kwargs)
    except TypeError as exc:
        return f"{getattr(function, '__qualname__', function)}{signature}: {exc}"
    return None
