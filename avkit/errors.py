"""Errors that avkit raises for bad input.

Every error names the file (and line, where there is one) and says what was
expected, so the CLI can print it as one line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class AvkitError(Exception):
    """Base class: a problem with the user's input, data or configuration."""


class MediaError(AvkitError):
    """An audio or image file that cannot be used.

    Attributes:
        path: the offending file.
        reason: what is wrong and what was expected.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # noqa: ANN204  (picklable, so DataLoader workers can hand it back)
        return type(self), (self.path, self.reason)


class ManifestError(AvkitError):
    """A manifest line that cannot be used.

    Attributes:
        path: the manifest file.
        line: 1-based line number, or None for a whole-file problem.
        reason: what is wrong and what was expected.
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # noqa: ANN204
        return type(self), (self.path, self.line, self.reason)


class ConfigError(AvkitError):
    """An invalid configuration value or file."""


class DatasetBuildError(AvkitError):
    """A dataset build refused in strict mode, or one that produced nothing usable."""


class ArtifactError(MediaError):
    """A checkpoint, embeddings file or index that is missing, corrupt, or does not match.

    Attributes:
        path: the offending file or directory.
        reason: what is wrong and what was expected.
    """


class TargetError(AvkitError):
    """A training target (boxes, a manifest field) that does not fit its item; datasets add the line."""
