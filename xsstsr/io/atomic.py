"""Atomic files: a hidden sibling written first and moved into place, stale siblings of dead
writers swept, a full disk reported as :class:`~xsstsr.errors.WriteError`, interrupts held
until the move is done.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import WriteError

#: Suffix of the hidden temporary a write goes to before it is renamed into place.
PARTIAL_SUFFIX = ".partial"


#: Suffix of a previous zarr store moved aside while the new one is renamed into place.
OLD_SUFFIX = ".old"


def host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"


def _owner_tag() -> str:
    """``host-pid``: lets a later write tell a dead writer's leftovers from a live one's."""
    return f"{host_tag()}-{os.getpid()}"


def temporary_sibling(path: Path, suffix: str = PARTIAL_SUFFIX) -> Path:
    """A hidden, unique name beside ``path`` that :func:`sweep_stale` recognises."""
    return path.with_name(f".{path.name}.{_owner_tag()}-{uuid.uuid4().hex[:8]}{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(path: Path) -> list[Path]:
    """Clear what a writer killed outright (SIGKILL, power loss) left beside ``path``.

    Only leftovers of dead processes on this host are touched. A previous zarr store that
    was moved aside when the writer died is put back at ``path`` (if ``path`` is empty),
    so that it is not lost; temporaries are removed. Returns the paths handled.
    """
    if os.name != "posix" or not path.parent.is_dir():
        return []  # os.kill(pid, 0) is not an existence check on Windows
    pattern = re.compile(
        re.escape(f".{path.name}.") + r"(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)-[0-9a-f]{8}"
        r"(?P<suffix>" + re.escape(PARTIAL_SUFFIX) + "|" + re.escape(OLD_SUFFIX) + ")$"
    )
    host = host_tag()
    handled = []
    for entry in sorted(path.parent.iterdir(), key=lambda p: p.name):
        match = pattern.match(entry.name)
        if not match or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        if match["suffix"] == OLD_SUFFIX and not path.exists():
            os.replace(entry, path)
        else:
            remove_path(entry)
        handled.append(entry)
    return handled


#: errno values that mean no more bytes fit: no space, quota, a file-size limit.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(err: BaseException, tmp: Path) -> int | None:
    """The errno if ``err`` came from a full disk, else None.

    zarr's OSError carries it; netCDF4 says only "HDF error", so then one more block is
    appended to the temporary (about to be removed): on a full disk that fails too.
    """
    seen: BaseException | None = err
    for _ in range(32):  # the cause/context chain, bounded
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    if not tmp.is_file():
        return None
    try:
        with open(tmp, "ab") as fh:
            fh.write(bytes(1 << 16))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as probe:
        return probe.errno if probe.errno in DISK_FULL else None
    return None


def disk_full_error(path: Path, code: int) -> WriteError:
    folder = str(path.parent)
    return write_error(
        code,
        f"the disk is full: {str(path)!r} could not be written ({os.strerror(code)}); "
        f"free space in {folder!r} (or raise the quota or file-size limit) and run again, "
        "or write elsewhere. Nothing was left at the destination (an existing file there is "
        "kept).",
    )


def write_error(code: int, message: str) -> WriteError:
    """A WriteError whose str() is ``message`` and whose ``errno`` is ``code``."""
    err = WriteError(message)
    err.errno = code  # OSError's own errno field, for callers that test it
    return err


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them (main thread only).

    A second signal while waiting is not held: it interrupts at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[signal.Signals] = []

    def hold(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signal.Signals(signum))

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received[0])


def replace_atomically(tmp: Path, path: Path) -> None:
    if not tmp.is_dir():
        os.replace(tmp, path)
        return
    # a zarr store: directories cannot be swapped in one rename; move the old one aside
    # first and put it back if the swap fails half-way
    old = temporary_sibling(path, OLD_SUFFIX)
    moved = False
    try:
        if path.exists():
            os.replace(path, old)
            moved = True
        os.replace(tmp, path)
    except BaseException:
        if moved and not path.exists():
            os.replace(old, path)
        raise
    if moved:
        remove_path(old)


def remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (a dead
    writer's leftover temporary is cleared first, as for :func:`xsstsr.io.write_dataset`)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = temporary_sibling(path)
    # 0o644 (less the umask): weights in a shared cache must be readable by other users
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
