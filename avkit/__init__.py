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



def __getattr__(name: str):  # noqa: ANN202  (lazy: ``import avkit`` stays light for the CLI)
    if name in ("register_modality", "list_modalities", "get_modality", "Modality"):
        import avkit.modalities

        return getattr(avkit.modalities, name)
    raise AttributeError(f"module 'avkit' has no attribute {name!r}")


__all__ = ["ArtifactError", "AvkitError", "ConfigError", "DatasetBuildError", "ManifestError", "MediaError", "__version__", "get_modality", "list_modalities", "register_modality"]
