"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The content goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target. On any failure the temporary file is removed and an existing file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent or ".",
                                                 prefix=f".{path.name}.", suffix=".tmp")
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
