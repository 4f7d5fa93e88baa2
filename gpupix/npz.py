"""Read an ``.npz`` file as untrusted data: every member's header before any of its data.

``np.load`` trusts the file: it inflates whatever a member's header declares, so a 1e6 x 1e6
header is a MemoryError and a few megabytes of deflated zeros become gigabytes. Here the
zip directory and each member's ``.npy`` header (shape, dtype, declared size) are read
first and the caller judges them; data is read only afterwards, never through pickle, and
never more bytes than were judged.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# A member that inflates to more than this many times its stored size is a zip bomb: float
# arrays deflate by a few percent, and gpupix writes its own files stored, not deflated.
MAX_INFLATION = 100
INFLATION_CHECKED_ABOVE = 16 << 20  # small members (a JSON string of zeros) may squeeze more
MAX_HEADER_BYTES = 10_000


class NpzError(ValueError):
    """An ``.npz`` (or one of its members) cannot be used; the message names the member."""


@dataclass(frozen=True)
class Member:
    """One ``NAME.npy`` member as its header declares it."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    info: zipfile.ZipInfo

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_headers(archive: zipfile.ZipFile, *, max_bytes: int) -> dict[str, Member]:
    """Each member's declared shape and dtype, keyed by name without ``.npy``.

    Refuses, before inflating any data: a name met twice or not ending in ``.npy``, a
    compression other than stored or deflated, members that would inflate to more than
    ``max_bytes`` together or by more than :data:`MAX_INFLATION` times, object (pickled)
    dtypes, and a header whose shape does not match the member's declared size.
    """
    members: dict[str, Member] = {}
    total = 0
    for info in archive.infolist():
        label = f"member {info.filename[:80]!r}"
        name = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy") or name in members:
            raise NpzError(f"{label}: not a .npy array, or a second member of that name")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise NpzError(f"{label}: compression method {info.compress_type} is not "
                           "stored or deflated")
        total += info.file_size
        if total > max_bytes:
            raise NpzError(f"{label}: the members inflate to more than {_size(max_bytes)} "
                           "together")
        if info.file_size > INFLATION_CHECKED_ABOVE and \
                info.file_size > MAX_INFLATION * max(info.compress_size, 1):
            raise NpzError(f"{label}: {_size(info.compress_size)} that inflate to "
                           f"{_size(info.file_size)} (a zip bomb?); refused before inflating")
        with archive.open(info) as handle:
            try:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                        handle, max_header_size=MAX_HEADER_BYTES)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                        handle, max_header_size=MAX_HEADER_BYTES)
                else:
                    raise ValueError(f"format version {version} is not 1.0 or 2.0")
                offset = handle.tell()
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise NpzError(f"{label}: not a readable .npy header ({_reason(exc)})"
                               ) from None
        if dtype.hasobject:
            raise NpzError(f"{label}: holds Python objects, which load only through pickle; "
                           "a gpupix file never does")
        member = Member(name=name, shape=tuple(int(n) for n in shape), dtype=dtype,
                        fortran_order=bool(fortran), info=info)
        if member.data_bytes != info.file_size - offset:
            raise NpzError(f"{label}: its header declares shape {member.shape} of "
                           f"{dtype.str} ({_size(member.data_bytes)}) but the member holds "
                           f"{_size(max(info.file_size - offset, 0))}")
        members[name] = member
    return members


def read_member(archive: zipfile.ZipFile, member: Member,
                check: Callable[[np.ndarray], str | None] | None = None) -> np.ndarray:
    """The member's array (its header already judged); ``check`` returns a problem or None."""
    label = f"member {member.info.filename[:80]!r}"
    try:
        with archive.open(member.info) as handle:
            array = np.lib.format.read_array(handle, allow_pickle=False,
                                             max_header_size=MAX_HEADER_BYTES)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise NpzError(f"{label}: cannot be read ({_reason(exc)})") from None
    if array.shape != member.shape or array.dtype != member.dtype:  # a header read twice
        raise NpzError(f"{label}: changed while it was read")
    problem = check(array) if check is not None else None
    if problem:
        raise NpzError(f"{label}: {problem}")
    return array


def open_npz(path: str | Path, what: str = "file") -> zipfile.ZipFile:
    """The zip archive of ``path``; :class:`NpzError` when it is not one."""
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise NpzError(f"not a readable .npz {what} ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 160 else text[:157] + "..."


def _size(count: Any) -> str:
    count = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover
