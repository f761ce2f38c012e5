"""One process per run folder: ``train``, ``adapt`` and ``calibrate`` hold the folder they
write while they run.

The lock is the operating system's lock on an open file, ``FOLDER/.unilandmark.lock``
(``flock`` on POSIX, ``msvcrt.locking`` on Windows), not the file's existence: the
system releases it when its holder ends, however it ends (an exception, Ctrl-C, a kill),
so a killed run never leaves a stale lock behind. The holder writes who it is (pid,
host, command, start time) into the side file ``FOLDER/.unilandmark.lock.json``; a
second process that finds the folder locked is refused with :class:`FolderInUse` (an
``InputError``: one line, exit code 2) naming the folder and that process. Both files are
removed when the holder lets go (a killed holder leaves them; the next one takes them
over). Without this, a second ``train --resume`` on the same folder removed the first's
in-flight temporary checkpoint as an orphan and both wrote the same files.

No third-party package: ``filelock`` is an extra of the review app only, and the
training install does not have it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .atomic import atomic_write_text
from .errors import InputError
from .preflight import check_writable_dir

#: the lock file in the folder
LOCK_NAME = ".unilandmark.lock"
#: the side file naming the holder (JSON: pid, host, command, started)
HOLDER_NAME = ".unilandmark.lock.json"
#: the errors of a lock attempt that mean "another holder has it" (flock: EWOULDBLOCK;
#: msvcrt.locking: EACCES or EDEADLOCK)
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES,
         getattr(errno, "EDEADLOCK", errno.EDEADLK), errno.EDEADLK}


class FolderInUse(InputError):
    """Another process holds the folder's lock; the message names the folder and it."""


def lock_file(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


def holder_file(folder: str | os.PathLike) -> Path:
    return Path(folder) / HOLDER_NAME


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process until the block ends.

    Raises :class:`FolderInUse` when another process holds it, and the preflight error
    of :func:`check_writable_dir` (naming ``option``) when it cannot be written. Folders
    this call created are removed again at the end if nothing was written into them (a
    refused run leaves no empty folder behind).
    """
    folder = Path(folder)
    check_writable_dir(folder, option)
    created = _missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = _acquire(folder)
        try:
            atomic_write_text(holder_file(folder), json.dumps(_holder()) + "\n")
            yield folder
        finally:
            _release(folder, fd)
    finally:
        for path in created:  # deepest first; only the empty ones
            with contextlib.suppress(OSError):
                path.rmdir()


def holder_words(folder: str | os.PathLike) -> str:
    """Who holds ``folder``, in words, from its side file (``pid 4242, started ...:
    unilandmark train run.yaml --resume``)."""
    try:
        info = json.loads(holder_file(folder).read_text(encoding="utf-8"))
        pid, command, started = info["pid"], info["command"], info["started"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid and command are not recorded yet"
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"pid {pid}{where}, started {started}: {command}"


def _refusal(folder: Path) -> FolderInUse:
    return FolderInUse(f"{folder} is in use by another unilandmark process "
                       f"({holder_words(folder)}); two processes in one folder would "
                       "overwrite each other's files: wait for that one to end, or use "
                       "another folder")


def _holder() -> dict:
    argv = list(sys.argv) or [""]
    prog = Path(argv[0]).name or "python"
    if prog == "__main__.py":
        prog = "python -m unilandmark"
    command = " ".join([prog, shlex.join(argv[1:])]).strip()
    if len(command) > 300:
        command = command[:297] + "..."
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")}


def _missing(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    out = []
    path = folder.absolute()
    while not path.exists() and path.parent != path:
        out.append(path)
        path = path.parent
    return out


def _acquire(folder: Path) -> int:
    """An open descriptor of the locked lock file; :class:`FolderInUse` when held."""
    path = lock_file(folder)
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(fd)
        except OSError as err:
            os.close(fd)
            if err.errno in _HELD:
                raise _refusal(folder) from None
            raise  # a file system without locks (ENOLCK): said as it is, not as "in use"
        try:  # the holder before may have removed the file between our open and lock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            return fd
        _unlock(fd)
        os.close(fd)
    raise _refusal(folder)


def _release(folder: Path, fd: int) -> None:
    """Remove the side file and the lock file while still holding the lock, then let
    go (a process that opened the old file meanwhile sees it is gone and tries again)."""
    try:
        for path in (holder_file(folder), lock_file(folder)):
            with contextlib.suppress(OSError):  # Windows: an open file cannot be removed
                path.unlink()
    finally:
        with contextlib.suppress(OSError):
            _unlock(fd)
        os.close(fd)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)  # the first byte (locking beyond the end is allowed)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
