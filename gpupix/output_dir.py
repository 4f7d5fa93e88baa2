"""Writing inside output.dir, and only there: no symlink followed, replaced or removed.

The promise: gpupix writes, renames and deletes only inside output.dir, never through a
symbolic link it did not create, and never removes a file it did not write.

How it is kept: output.dir itself is resolved once (a link the user named is theirs to
name); every folder below it is opened one component at a time with ``O_NOFOLLOW`` relative
to its parent's descriptor, so a link planted anywhere below (``out/report/plots ->
/elsewhere``) is refused, not followed, even if it appears while the run goes on. Files are
created ``O_EXCL | O_NOFOLLOW`` under a temporary name and renamed over the final name, which
is first checked not to be a link (a link there is refused: replacing it would remove a file
gpupix did not write). New files get the mode the umask gives (0644 under 022).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpupix.errors import ConfigError, ImageError

TEMP_PREFIX = ".gpupix-tmp-"
LOCK_FILE = ".gpupix.lock"
_TEMP_PID = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(ImageError):
    """A write below output.dir would leave it or pass through a symbolic link."""


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` (lexically normalised) is ``root`` or below it."""
    root_text = os.path.normpath(os.path.abspath(root))
    path_text = os.path.normpath(os.path.abspath(path))
    return os.path.commonpath([root_text, path_text]) == root_text


def _relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    if ".." in Path(path).parts or not inside(root, path):
        raise UnsafePathError(f"{path}: outside output.dir {str(root)!r}; gpupix writes only "
                              "inside output.dir")
    relative = os.path.relpath(os.path.normpath(os.path.abspath(path)),
                               os.path.normpath(os.path.abspath(root)))
    return () if relative == "." else Path(relative).parts


@contextmanager
def _directory(root: Path, parts: tuple[str, ...], *, create: bool, shown: Path
               ) -> Iterator[int]:
    """A descriptor of root/parts..., each component opened without following links."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for index, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = Path(root, *parts[: index + 1])
                    what = "a symbolic link" if os.path.islink(where) else "not a folder"
                    raise UnsafePathError(
                        f"{shown}: {where} is {what}; gpupix does not write through links "
                        "it did not create (remove it, or choose another output.dir)"
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _refuse_link(name: str, fd: int, path: Path) -> None:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"{path}: is a symbolic link gpupix did not create; it is not "
                              "followed or replaced (remove it, or choose another output.dir)")
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))


def write_atomic(path: Path, data: bytes, *, root: Path) -> None:
    """Write ``data`` to ``path`` (below ``root``) through a temporary file + rename."""
    path = Path(path)
    parts = _relative_parts(root, path)
    if not parts:
        raise UnsafePathError(f"{path}: is output.dir itself, not a file in it")
    with _directory(root, parts[:-1], create=True, shown=path) as fd:
        _refuse_link(parts[-1], fd, path)
        temp = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=fd)  # umask applies
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=fd)
            except OSError:
                pass
            raise


def open_append(path: Path, *, root: Path) -> io.TextIOWrapper:
    """``path`` (below ``root``) opened to append text, never through a link."""
    path = Path(path)
    parts = _relative_parts(root, path)
    with _directory(root, parts[:-1], create=True, shown=path) as fd:
        _refuse_link(parts[-1], fd, path)
        handle = os.open(parts[-1], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=fd)
    return open(handle, "a", encoding="utf-8")  # noqa: SIM115 - the caller closes it


def make_dirs(path: Path, *, root: Path) -> None:
    """Create ``path`` and its parents below ``root``, refusing links on the way."""
    with _directory(root, _relative_parts(root, Path(path)), create=True, shown=Path(path)):
        pass


def remove_file(path: Path, *, root: Path) -> bool:
    """Delete the regular file ``path`` (below ``root``); a link or folder is left alone.

    Returns True when a file was removed.
    """
    path = Path(path)
    parts = _relative_parts(root, path)
    try:
        with _directory(root, parts[:-1], create=False, shown=path) as fd:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                return False
            os.unlink(parts[-1], dir_fd=fd)
            return True
    except (FileNotFoundError, UnsafePathError):
        return False


def regular_files(folder: Path, *, root: Path) -> list[str]:
    """Names of the regular files in ``folder`` (below ``root``), links not followed."""
    try:
        with _directory(root, _relative_parts(root, Path(folder)), create=False,
                        shown=Path(folder)) as fd:
            names = os.listdir(fd)
            return [name for name in names
                    if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)]
    except (FileNotFoundError, UnsafePathError):
        return []


def foreign_links(root: Path, names: tuple[str, ...]) -> list[Path]:
    """Symbolic links at ``names`` below ``root``, or anywhere inside those that are folders
    (the run's own files and the report's folder), walked without following links."""
    found: list[Path] = []
    for name in names:
        path = Path(root, name)
        if path.is_symlink():
            found.append(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path, followlinks=False):
                for entry in (*dirs, *files):
                    if os.path.islink(os.path.join(folder, entry)):
                        found.append(Path(folder, entry))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: this run is the one cleaning them
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(root: Path) -> int:
    """Delete the temporaries of runs whose process is gone (a kill mid-write); links are
    never followed and a temporary of a live process is left to it. Returns the count."""
    removed = 0
    if not Path(root).is_dir():
        return 0
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            match = _TEMP_PID.match(name)
            if match is not None and _alive(int(match.group(1))):
                continue
            if remove_file(Path(folder, name), root=root):
                removed += 1
    return removed


class OutputLock:
    """An exclusive lock on output.dir for one run (``flock`` on ``.gpupix.lock``).

    A second run on the same folder is refused with one line naming the pid that holds it;
    the lock goes with the process, so a killed run leaves nothing to clean up.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.fd: int | None = None

    def acquire(self) -> None:
        path = self.root / LOCK_FILE
        with _directory(self.root, (), create=False, shown=path) as dir_fd:
            try:
                fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                             | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ConfigError(f"output.dir: {str(path)!r} is a symbolic link; remove "
                                      "it (gpupix keeps its lock there)") from None
                raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"output.dir: {str(self.root)!r} is in use by another gpupix "
                              f"run (pid {holder}); wait for it to end or choose another "
                              "output.dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
