"""The model_dir lock that keeps two independent trainers from interleaving checkpoints.

The lock must die with the trainer, and only with it:

* POSIX: an ``fcntl`` record lock (``lockf``). Unlike ``flock``, record locks belong to the
  process, not to the open file: a child forked inside ``input_fn`` (multiprocessing, a
  tf.data service worker) does not inherit it, and the kernel drops it when the trainer dies,
  even by SIGKILL. The descriptor is not inheritable, so ``subprocess`` children get none.
* Windows: ``msvcrt.locking`` on a non-inheritable handle, released by the OS when the process
  exits.

The owner's PID is written into the file. A trainer that finds the lock taken checks whether
that PID is alive: a dead owner means the OS has yet to release the lock (Windows may lag), so
it retries for a few seconds before giving up. The error names the owner and says whether it
is still running.
"""

from __future__ import annotations

import os
import sys
import threading
import time

LOCK_NAME = ".bridge-train.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # a byte past the PID text: Windows locks forbid reading the locked range
_STALE_RETRY_SECS = 5.0

_held: set[str] = set()  # lock files held by this process (record locks do not exclude their own process)
_held_mutex = threading.Lock()


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    os.lseek(fd, 0, os.SEEK_SET)  # lockf locks from the current offset to the end of the file
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EACCES or EAGAIN: held by another process
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        os.lseek(fd, 0, os.SEEK_SET)
        fcntl.lockf(fd, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID is running (on this machine)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _read_owner(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


class TrainerLock:
    """An exclusive lock on model_dir for the duration of ``train``.

    Two independent trainers writing one model_dir would interleave checkpoints; the second
    gets a clear error instead. See the module docstring for why the lock never outlives its
    trainer.
    """

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._path = os.path.join(model_dir, LOCK_NAME)
        self._fd: int | None = None

    def _refuse(self, owner: int | None) -> RuntimeError:
        who = f"pid {owner}" if owner is not None else "pid unknown"
        return RuntimeError(
            f"Another trainer ({who}) is already training in model_dir {self._model_dir} "
            f"(lock file {self._path}). Two independent trainers cannot share a model_dir; use a "
            "different model_dir, or a tf.distribute cluster."
        )

    def __enter__(self) -> "TrainerLock":
        os.makedirs(self._model_dir, exist_ok=True)
        key = os.path.realpath(self._path)
        with _held_mutex:
            if key in _held:
                raise self._refuse(os.getpid())
            _held.add(key)
        try:
            self._fd = self._acquire()
        except BaseException:
            with _held_mutex:
                _held.discard(key)
            raise
        return self

    def _acquire(self) -> int:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited (PEP 446)
        deadline = None
        while not _try_lock(fd):
            owner = _read_owner(fd)
            if owner is not None and owner != os.getpid() and not pid_alive(owner):
                # The owner died; the OS releases its lock shortly. Wait for that, briefly.
                deadline = deadline or time.monotonic() + _STALE_RETRY_SECS
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
            os.close(fd)
            raise self._refuse(owner)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, str(os.getpid()).encode("ascii"))
        return fd

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
            with _held_mutex:
                _held.discard(os.path.realpath(self._path))
