"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a crash mid-write leaves the old
file (if any) intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from avkit.errors import ArtifactError, ConfigError, MediaError

#: The lock file a writer holds in the folder it writes (a run or an index directory).
LOCK_NAME = ".avkit.lock"
_HELD: dict[Path, int] = {}  # folders this process holds, with their nesting depth


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` minus the process umask.

    ``tempfile.mkstemp`` creates files 0600 whatever the umask; files written
    through a temporary get this mode instead, as if written directly.
    """
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` sets it, racing threads)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0)  # elsewhere: set it and put it back at once
    os.umask(mask)
    return mask


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


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the file ``folder/.avkit.lock``) while the block runs.

    Two writers of one run or index directory would mix their files; the second is refused.
    The lock is ``flock``'s, so the kernel releases it when its holder exits, even when killed.
    The lock file is removed on release, and so is ``folder`` if this call created it and it
    is left empty (a refused run leaves nothing behind). A process may take a lock it holds
    again (the inner one is a no-op).

    Raises:
        ArtifactError: another process holds it; the message names its pid and ``what`` it writes.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(folder, f"is a file, not a folder; the {what} needs a folder of its own")
    key = folder.resolve()
    if key in _HELD:  # this process holds it already (a command around a library call): nest
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, new_file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ArtifactError(folder, f"process {holder} is writing this {what}; wait for it to finish, "
                                "or write somewhere else") from None  # fmt: skip
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # still the file others will open
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder released and removed it between our open and lock: try again
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = 1
        yield
    finally:
        _HELD.pop(key, None)
        os.unlink(path)  # before the lock goes, so a newcomer never locks a file that is about to vanish
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # not empty: the writer wrote something, keep it
                folder.rmdir()


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


#: Leading bytes of common files, to say what a file that fails to decode actually is.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG", "a PNG image"), (0, b"\xff\xd8\xff", "a JPEG image"), (0, b"GIF8", "a GIF image"),
    (0, b"BM", "a BMP image"), (8, b"WEBP", "a WebP image"), (8, b"WAVE", "a WAV file"), (8, b"AVI ", "an AVI video"),
    (0, b"fLaC", "a FLAC file"), (0, b"OggS", "an Ogg file"), (0, b"ID3", "an MP3 file"), (0, b"\xff\xfb", "an MP3 file"),
    (4, b"ftyp", "an MP4/MOV file"), (0, b"PK\x03\x04", "a ZIP archive"), (0, b"%PDF", "a PDF document"),
    (0, b"\x7fELF", "a program (ELF)"), (0, b"SQLite format 3", "an SQLite database"),
)  # fmt: skip


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, hex, read ``block`` bytes at a time (any size, bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            h.update(chunk)
    return h.hexdigest()


def describe_file(path: str | Path) -> str:
    """What a file appears to be, from its first bytes and size: ``a PNG image of 1,204 bytes``.

    For error messages about files that fail to decode as what they should be.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        return f"a file that cannot be read ({exc.strerror})"
    if size == 0:
        return "an empty file"
    kind = next((name for at, magic, name in _MAGIC if head[at : at + len(magic)] == magic), None)
    if kind is None and _is_text(head):
        kind = "a text file"
    if kind is None:
        kind = f"a file of unrecognised format starting with {head[:8]!r}"
    return f"{kind} of {size:,} bytes"


def undecodable_error(path: Path, what: str, expected: str, own_kinds: tuple[str, ...], library: str,
                      said: str) -> MediaError:  # fmt: skip
    """The error for a file a decoder refused: ``cannot be decoded as {what}: expected {expected}, found
    {describe_file(path)} ({library}: {said})``. A file of one of ``own_kinds`` (``"a PNG"``, ...) is
    said to be damaged or truncated."""
    found = describe_file(path)
    if found.startswith(own_kinds):
        found += " that is damaged or truncated"
    return MediaError(path, f"cannot be decoded as {what}: expected {expected}, found {found} ({library}: {said})")


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sample is still text
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    return bool(text) and all(c.isprintable() or c.isspace() for c in text)


def refuse_overwriting(out: str | Path, inputs: Iterable[str | Path], what: str = "--out") -> None:
    """Refuse an output (file or folder) that is one of the ``inputs`` (paths compared once resolved).

    Raises:
        ConfigError: naming the output and the input it would destroy.
    """
    target = Path(out).resolve()
    for given in inputs:
        if Path(given).resolve() == target:
            raise ConfigError(f"{what} {out} is the input {given}; writing there would destroy it. Choose another place")


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
