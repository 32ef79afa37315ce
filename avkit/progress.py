"""Progress bars for long work: tqdm on stderr, off when not asked for or not a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], desc: str, enabled: bool = True, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap ``items`` in a progress bar when ``enabled`` and stderr is a terminal.

    Library functions take ``show_progress`` and pass it here; the CLI turns it on.
    """
    # disable=None lets tqdm switch itself off on a non-TTY (CI logs, pipes).
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=None if enabled else True, leave=False)
