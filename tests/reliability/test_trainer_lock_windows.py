"""The trainer lock's Windows branch (``msvcrt.locking``), run on any OS against a fake ``msvcrt``.

The fake keeps ``msvcrt.locking``'s documented semantics: byte-range locks starting at the
handle's current position, held per handle, ``LK_NBLCK`` failing at once with ``OSError``
when any byte is locked (by another handle, or the same one), ``LK_UNLCK`` failing for bytes
the handle does not hold, and mandatory locking (reading a byte another handle locked fails,
which is why the lock sits past the PID text). ``kernel32``'s process queries, which
``pid_alive`` uses on Windows, are faked the same way.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys
import threading
import time
import types

import pytest

from bridge import _trainer_lock
from bridge._trainer_lock import LOCK_NAME, TrainerLock

OTHER_PROCESS = -1  # a lock holder that is not one of this process's handles
STILL_ACTIVE = 259


class FakeMsvcrt(types.ModuleType):
    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.locks: dict[tuple[int, int, int], int] = {}  # (device, inode, byte) -> holding handle
        self.calls: list[tuple[str, int]] = []

    def _bytes(self, fd: int, offset: int, count: int) -> list[tuple[int, int, int]]:
        st = os.fstat(fd)
        return [(st.st_dev, st.st_ino, offset + i) for i in range(count)]

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        wanted = self._bytes(fd, offset, nbytes)
        if mode == self.LK_NBLCK:
            self.calls.append(("lock", offset))
            if any(key in self.locks for key in wanted):
                raise OSError(errno.EACCES, "Permission denied")
            self.locks.update(dict.fromkeys(wanted, fd))
        elif mode == self.LK_UNLCK:
            self.calls.append(("unlock", offset))
            if any(self.locks.get(key) != fd for key in wanted):
                raise OSError(errno.EACCES, "Permission denied")
            for key in wanted:
                del self.locks[key]
        else:
            raise AssertionError(f"the trainer lock must never block (mode {mode})")

    def hold(self, path: str, offset: int) -> None:
        """Another process holds the byte at ``offset`` of ``path``."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            self.locks.update(dict.fromkeys(self._bytes(fd, offset, 1), OTHER_PROCESS))
        finally:
            os.close(fd)

    def release_other(self) -> None:
        """The OS releases the other process's locks (it exited)."""
        for key in [k for k, holder in self.locks.items() if holder == OTHER_PROCESS]:
            del self.locks[key]

    def checked_read(self, real_read):
        """``os.read`` under mandatory locking: bytes another handle locked cannot be read."""

        def read(fd: int, count: int) -> bytes:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # pipes (subprocess) are not locked
                return real_read(fd, count)
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            for key in self._bytes(fd, offset, count):
                if self.locks.get(key, fd) != fd:
                    raise PermissionError(errno.EACCES, "The process cannot access the file because another "
                                          "process has locked a portion of the file")
            return real_read(fd, count)

        return read


class FakeKernel32:
    """OpenProcess / GetExitCodeProcess / CloseHandle over a table of pid -> exit code."""

    def __init__(self, processes: dict[int, int]) -> None:
        self.processes = processes
        self.open_handles: set[int] = set()

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:  # noqa: N802 - Windows API name
        assert access == 0x1000 and inherit is False  # PROCESS_QUERY_LIMITED_INFORMATION, not inherited
        if pid not in self.processes:
            return 0
        self.open_handles.add(pid)
        return pid

    def GetExitCodeProcess(self, handle: int, code) -> int:  # noqa: N802
        code._obj.value = self.processes[handle]
        return 1

    def CloseHandle(self, handle: int) -> int:  # noqa: N802
        self.open_handles.remove(handle)
        return 1


@pytest.fixture
def windows(monkeypatch, tmp_path):
    """The lock module runs its Windows branch; returns (fake msvcrt, fake kernel32, model_dir)."""
    fake = FakeMsvcrt()
    kernel32 = FakeKernel32({os.getpid(): STILL_ACTIVE})
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(ctypes, "windll", types.SimpleNamespace(kernel32=kernel32), raising=False)
    monkeypatch.setattr(os, "read", fake.checked_read(os.read))
    monkeypatch.setattr(sys, "platform", "win32")
    yield fake, kernel32, str(tmp_path)
    assert not kernel32.open_handles  # every process handle was closed


def _lock_byte():
    return _trainer_lock._WINDOWS_LOCK_OFFSET


def test_acquires_past_the_pid_and_releases_on_exit(windows):
    fake, _, model_dir = windows
    with TrainerLock(model_dir) as lock:
        assert [offset for (_, _, offset) in fake.locks] == [_lock_byte()]
        assert list(fake.locks.values()) == [lock._fd]
        # The PID is readable by another handle while the lock is held (the lock is past it).
        fd = os.open(os.path.join(model_dir, LOCK_NAME), os.O_RDONLY)
        try:
            assert _trainer_lock._read_owner(fd) == os.getpid()
        finally:
            os.close(fd)
        held_fd = lock._fd
    assert fake.locks == {}
    assert fake.calls == [("lock", _lock_byte()), ("unlock", _lock_byte())]
    with pytest.raises(OSError):
        os.fstat(held_fd)  # the handle was closed
    with TrainerLock(model_dir):  # and can be taken again
        pass


def test_a_live_holder_in_another_process_is_refused_by_name(windows):
    fake, kernel32, model_dir = windows
    holder = os.getppid()
    kernel32.processes[holder] = STILL_ACTIVE
    path = os.path.join(model_dir, LOCK_NAME)
    with open(path, "w") as f:
        f.write(str(holder))
    fake.hold(path, _lock_byte())
    with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {holder}\) is already training in model_dir "
                                           rf".*lock file .*{LOCK_NAME}"):
        with TrainerLock(model_dir):
            pass
    assert fake.calls == [("lock", _lock_byte())]  # refused at once: the holder runs
    assert all(holder == OTHER_PROCESS for holder in fake.locks.values())  # nothing of ours left held
    with open(path) as f:
        assert f.read() == str(holder)  # the holder's PID was not overwritten
    fake.release_other()  # the holder exits
    with TrainerLock(model_dir):
        with open(path) as f:
            assert f.read() == str(os.getpid())


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


@pytest.mark.parametrize("handle_still_open", [False, True])
def test_a_dead_holder_is_waited_for_until_the_os_releases_its_lock(windows, handle_still_open):
    fake, kernel32, model_dir = windows
    dead = _dead_pid()
    if handle_still_open:  # a process object that still exists, with an exit code
        kernel32.processes[dead] = 0
    path = os.path.join(model_dir, LOCK_NAME)
    with open(path, "w") as f:
        f.write(str(dead))
    fake.hold(path, _lock_byte())
    timer = threading.Timer(0.4, fake.release_other)
    timer.start()
    start = time.monotonic()
    try:
        with TrainerLock(model_dir):
            waited = time.monotonic() - start
            with open(path) as f:
                assert f.read() == str(os.getpid())
    finally:
        timer.cancel()
    assert 0.3 < waited < _trainer_lock._STALE_RETRY_SECS
    assert len(fake.calls) > 2  # retried


def test_a_dead_holder_whose_lock_is_never_released_is_refused_by_name(windows, monkeypatch):
    fake, _, model_dir = windows
    monkeypatch.setattr(_trainer_lock, "_STALE_RETRY_SECS", 0.5)
    dead = _dead_pid()
    path = os.path.join(model_dir, LOCK_NAME)
    with open(path, "w") as f:
        f.write(str(dead))
    fake.hold(path, _lock_byte())
    with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {dead}\)"):
        with TrainerLock(model_dir):
            pass


def test_two_locks_in_one_process_never_reach_msvcrt_twice(windows):
    fake, _, model_dir = windows
    with TrainerLock(model_dir):
        with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {os.getpid()}\)"):
            with TrainerLock(model_dir):
                pass
        assert fake.calls == [("lock", _lock_byte())]
    assert fake.locks == {}
