"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a crash mid-write leaves the old
file (if any) intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from avkit.errors import MediaError


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` minus the process umask.

    ``tempfile.mkstemp`` creates files 0600 whatever the umask; files written
    through a temporary get this mode instead, as if written directly.
    """
    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path: str | Path, suffix: str | None = None) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` only if the block succeeds.

    Args:
        path: the final destination; its parent directory is created.
        suffix: suffix of the temporary file (some writers pick the format from
            it); defaults to the destination's suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix
    )
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def require_file(path: Path, expected: str) -> None:
    """Raise MediaError unless ``path`` is an existing, non-empty regular file.

    Args:
        expected: what the file should be, for the message (e.g. "a WAV, FLAC or OGG file").
    """
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if not path.is_file():
        raise MediaError(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, f"file is empty (0 bytes); expected {expected}")
