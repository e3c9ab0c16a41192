"""Writing a file so that a crash never leaves it half written.

The new content goes to PATH.partial in the same folder (so the rename stays on one file
system), is flushed and fsynced, and then os.replace puts it in PATH's place in one step: at
every instant PATH is the old complete file or the new complete one. A process killed while
writing leaves PATH as it was and a stale PATH.partial, which the next write replaces.
"""
import contextlib
import os
import time
from typing import BinaryIO, Iterator

# For tests: seconds to pause after the first write of every file, to make sure a kill lands
# while a file is being written.
PAUSE_ENV = "RNNFAST_TEST_WRITE_PAUSE_S"


def partial_path(path: str) -> str:
    return path + ".partial"


class _PausingWriter:
    """A binary file that pauses once, after its first write (see PAUSE_ENV)."""

    def __init__(self, f: BinaryIO, pause_s: float):
        self._f, self._pause_s = f, pause_s

    def write(self, data) -> int:
        n = self._f.write(data)
        if self._pause_s:
            self._f.flush()             # the partial file visibly holds something
            time.sleep(self._pause_s)
            self._pause_s = 0.0
        return n

    def flush(self) -> None:
        self._f.flush()


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f: f.write(...)``: PATH gets all of it, or stays as it was."""
    tmp = partial_path(path)
    pause_s = float(os.environ.get(PAUSE_ENV, "0") or 0)
    try:
        with open(tmp, "wb") as f:
            yield _PausingWriter(f, pause_s) if pause_s > 0 else f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(os.path.dirname(os.path.abspath(path)))


def _fsync_folder(folder: str) -> None:
    """Makes the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str) -> str:
    """Why PATH cannot be written atomically, or "" when it can: its folder must exist and take
    new files, and PATH must not be a folder. Creates and removes PATH.partial to be sure."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder; give a file name"
    if not os.path.isdir(folder):
        return f"the folder {os.path.dirname(path) or folder} does not exist"
    try:
        with open(partial_path(path), "wb"):
            pass
        os.remove(partial_path(path))
    except OSError as e:
        return f"cannot write in {os.path.dirname(path) or '.'} ({e.strerror})"
    return ""
