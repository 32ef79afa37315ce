"""avkit: an audio-visual multi-modal research toolkit."""

from avkit.errors import (
    ArtifactError,
    AvkitError,
    ConfigError,
    DatasetBuildError,
    ManifestError,
    MediaError,
)

__version__ = "0.1.0"

__all__ = ["ArtifactError", "AvkitError", "ConfigError", "DatasetBuildError", "ManifestError", "MediaError", "__version__"]
