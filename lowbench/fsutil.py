"""Atomic file writes (:func:`atomic_path`: temp file in the same directory + os.replace) and
output-path checks.

A write that the system refuses (read-only file system, no permission, disk full, file-size
limit, quota, a path through a file) raises a :class:`~lowbench.errors.LowbenchError` that names
the path and the fix, leaves no temp file and never touches the previous file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lowbench.errors import LowbenchError, OutputError

#: errno -> what to do about it, for errors writing an output.
_OUTPUT_FIXES: dict[int, str] = {
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.EACCES: "no permission to write there; choose a folder you can write to",
    errno.EPERM: "the system does not allow writing there; choose a folder you can write to",
    errno.ENOSPC: "the disk is full; free some space or choose another disk",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another disk",
    errno.EFBIG: "the file is larger than the file system or the file-size limit (`ulimit -f`) "
                 "allows; free space, raise the limit or choose another disk",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "something else exists at that path; choose another path",
    errno.EISDIR: "it is a folder; pass a file name",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def output_error(path: str | os.PathLike[str], err: OSError, what: str = "write"
                 ) -> OutputError:
    """The one-line error for an OSError while writing ``path``: the path, the system's reason
    and the fix (raise it ``from err``)."""
    reason = err.strerror or str(err)
    fix = _OUTPUT_FIXES.get(err.errno or 0, "check the path and the disk")
    return OutputError(f"cannot {what} {os.fspath(path)}: {reason}; {fix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The one way lowbench writes a file: yields a temp path in ``path``'s folder (created if
    missing) for the caller to write; on a clean exit the temp file is fsynced, made 0644 and
    renamed over ``path`` (readers see the old file or the whole new one); on any error it is
    removed and ``path`` is left as it was.

    An OSError (read-only file system, no permission, disk full, file-size limit, ...) becomes
    the one-line :class:`~lowbench.errors.OutputError` of :func:`output_error`."""
    path = Path(path)
    tmp: Path | None = None
    try:
        _make_folder(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and checkpoints are shared files
        os.replace(tmp, path)
        tmp = None
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def check_new_folder(path: str | os.PathLike[str], option: str | None = None) -> Path:
    """``path`` as a Path when it is absent or an empty folder (where :func:`atomic_folder` may
    put a new one), else the one-line OutputError naming ``option`` (e.g. ``--out``)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        name = f"{option} {path}" if option else str(path)
        raise OutputError(f"{name} exists and is not an empty folder; choose a new folder "
                          "(a folder is never written over another)")
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A whole folder written at once: yields a temp folder beside ``path`` (which must be
    absent or an empty folder) for the caller to fill; on a clean exit it is renamed to
    ``path``, on any error removed. Readers see no folder or the complete one."""
    import shutil

    path = check_new_folder(path)
    tmp: Path | None = None
    try:
        _make_folder(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        yield tmp
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
        tmp = None
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _make_folder(folder: Path) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, but a file in the way is ENOTDIR (not
    EEXIST, which would not tell what is wrong)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    folder.mkdir(parents=True, exist_ok=True)


def _probe_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) if missing and create + remove a temp file in it
    (raises the OSError of whatever the system refuses)."""
    _make_folder(folder)
    fd, probe = tempfile.mkstemp(prefix=".lowbench-probe.", dir=folder)
    os.close(fd)
    os.unlink(probe)


def check_output_folder(folder: str | os.PathLike[str], option: str = "--out") -> Path:
    """Make sure ``folder`` (the value of ``option``) is a folder this process can write into:
    created (with its parents) if missing and probed with a temp file; else LowbenchError
    naming the option, the path and the fix. Returns it as a Path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LowbenchError(f"{option} {folder} exists and is not a folder; pass a folder "
                            "(a new or existing directory)")
    try:
        _probe_folder(folder)
    except OSError as err:
        raise output_error(folder, err, what=f"write into {option} folder") from err
    return folder


def check_output_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Make sure ``path`` (the value of ``option``) can be written as a file: not a folder, in
    a folder this process can write into (created if missing); an existing file will be
    replaced atomically. LowbenchError naming the option, the path and the fix otherwise."""
    path = Path(path)
    if path.is_dir():
        raise LowbenchError(f"{option} {path} is a folder; pass a file name inside it")
    try:
        _probe_folder(path.parent)
    except OSError as err:
        raise output_error(path, err, what=f"write {option}") from err
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save ``array`` in .npy format atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())
