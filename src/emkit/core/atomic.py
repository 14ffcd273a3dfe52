"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The content goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target. On any failure the temporary file is removed and an existing file is untouched.

A process killed while writing cannot remove its temporary file: it stays behind as
``.<name>.emkit-<pid>-<random>.tmp`` beside the target. The next write to the same target removes
such files whose process no longer runs on this machine and that are over a minute old (a
writer on another machine sharing the folder has had time to finish); they hold nothing the
target lacks, and can be deleted by hand at any time no save is running.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike,
                     content: str | bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (text as UTF-8, bytes, or a function writing to a binary stream) to
    ``path`` atomically. Raises OSError naming ``path`` when the folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "it is a directory", str(path))
    remove_stale_temporaries(path)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent or ".",
                                                 prefix=_temporary_prefix(path), suffix=".tmp")
    except OSError as error:  # name the file the caller asked for, not the temporary one
        raise OSError(error.errno, f"cannot write it ({error.strerror})", str(path)) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            if callable(content):
                content(stream)
            else:
                stream.write(content.encode("utf-8") if isinstance(content, str) else content)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)
    return path


_STALE_AFTER_SECONDS = 60.0


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.emkit-{os.getpid()}-"


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writes to ``path`` left behind (see the module
    docstring) and return their paths; files of running writers are kept."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.emkit-") + r"(\d+)-[^/]*\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match is None or _process_running(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                if time.time() - candidate.lstat().st_mtime > _STALE_AFTER_SECONDS:
                    candidate.unlink()
                    removed.append(candidate)
    return removed


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return True  # it does, and belongs to another user
    except (OSError, OverflowError):
        return False
    return True


def _file_mode(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777  # keep an overwritten file's permissions
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); harmless where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
