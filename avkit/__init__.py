"""avkit: an audio-visual multi-modal research toolkit.

The registries are reachable from here, as timm's are::

    import avkit
    avkit.list_modalities()      # ['audio', 'image']
    avkit.list_encoders()        # ['image_resnet', 'logmel_cnn', 'soundnet']
    avkit.list_heads()           # ['classify', 'contrastive', 'distill']
    enc = avkit.create_encoder("logmel_cnn", width=16)
    model = avkit.load_model("runs/contrastive")

Attributes load on first use, so ``import avkit`` stays light for the CLI.
"""

from avkit.errors import (
    ArtifactError,
    AvkitError,
    ConfigError,
    DatasetBuildError,
    ManifestError,
    MediaError,
    TargetError,
)

__version__ = "0.2.0"

#: Lazily loaded public names -> the module that defines them.
_LAZY = {
    "Modality": "avkit.modalities",
    "Pipeline": "avkit.modalities",
    "get_modality": "avkit.modalities",
    "list_modalities": "avkit.modalities",
    "register_modality": "avkit.modalities",
    "create_encoder": "avkit.models",
    "list_encoders": "avkit.models",
    "list_heads": "avkit.models",
    "register_head": "avkit.models",
    "Head": "avkit.models",
    "create_model": "avkit.models",
    "load_model": "avkit.models",
}


def __getattr__(name: str):  # noqa: ANN202  (lazy module attributes, PEP 562)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["ArtifactError", "AvkitError", "ConfigError", "DatasetBuildError", "ManifestError", "MediaError",
           "TargetError", "__version__", *_LAZY]  # fmt: skip
