"""avkit: an audio-visual multi-modal research toolkit."""

from avkit.errors import AvkitError, ConfigError, DatasetBuildError, ManifestError, MediaError

__version__ = "0.1.0"

__all__ = ["AvkitError", "ConfigError", "DatasetBuildError", "ManifestError", "MediaError", "__version__"]
