"""Finishing a dataset build: strict refusal, the manifest, and ``build.json``.

Shared by every builder (AV-digits, scenes) so that bad items are handled the
same way everywhere: reported, skipped and counted, or refused in strict mode.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avkit.data.manifest import Record, write_manifest
from avkit.errors import DatasetBuildError
from avkit.fileio import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build produced: counts, skipped items, and where the manifest is."""

    manifest: Path
    records: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    per_split: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def skip(self, item_id: str, reason: str) -> None:
        """Record a bad item (it is left out of the manifest)."""
        self.skipped.append({"id": item_id, "reason": reason})
        log.warning("skipping %s: %s", item_id, reason)


def finish_build(
    report: BuildReport, records: list[Record], strict: bool, started: float, meta: dict[str, Any]
) -> BuildReport:
    """Refuse (strict) or accept the skips, then write the manifest and ``build.json`` beside it.

    Args:
        started: ``time.perf_counter()`` at the start of the build.
        meta: what to record in ``build.json`` (dataset name, config, ...).

    Raises:
        DatasetBuildError: in strict mode if any item was skipped, or if nothing was built.
    """
    if report.skipped and strict:
        first = report.skipped[0]
        raise DatasetBuildError(
            f"{len(report.skipped)} item(s) failed (first: {first['id']}: {first['reason']}); "
            "rerun without --strict to skip them"
        )
    if not records:
        raise DatasetBuildError("no item could be built; see the log for the reasons")
    write_manifest(report.manifest, records)
    report.records = len(records)
    report.per_split = dict(Counter(r.split or "(none)" for r in records))
    report.seconds = time.perf_counter() - started
    atomic_write_json(
        report.manifest.parent / "build.json",
        {**meta, "records": report.records, "per_split": report.per_split,
         "skipped": report.skipped, "seconds": round(report.seconds, 2)},
    )  # fmt: skip
    log.info("%s: %d records in %.1f s (%d skipped)", meta.get("dataset", "dataset"), report.records,
             report.seconds, len(report.skipped))  # fmt: skip
    return report
