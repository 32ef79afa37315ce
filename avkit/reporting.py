"""Results files that several experiments write into: one marked section each.

    update_section("docs/results.md", "few_voices", markdown)

A section lies between ``<!-- avkit:section NAME -->`` and ``<!-- avkit:end NAME -->``;
writing it replaces only that part (or appends it), atomically, so one
experiment's rerun leaves the others' numbers alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from avkit.fileio import atomic_write_text


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- avkit:section {name} -->", f"<!-- avkit:end {name} -->"


def update_section(path: str | Path, name: str, text: str, title: str = "# Results") -> None:
    """Replace (or append) section ``name`` of the Markdown file ``path`` with ``text``."""
    path = Path(path)
    start, end = _markers(name)
    block = f"{start}\n{text.strip()}\n{end}"
    current = path.read_text(encoding="utf-8") if path.is_file() else f"{title}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block
    atomic_write_text(path, updated.rstrip() + "\n")


def read_section(path: str | Path, name: str) -> str | None:
    """The text of section ``name``, or None if the file or the section is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    start, end = _markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), path.read_text(encoding="utf-8"), re.DOTALL)
    return match.group(1) if match else None
