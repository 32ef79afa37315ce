"""Data: the manifest contract, checks, and the built-in datasets (AV-digits, scenes)."""

from avkit.data.manifest import AV_MODALITIES, Manifest, Record, read_manifest, write_manifest

__all__ = ["AV_MODALITIES", "Manifest", "Record", "read_manifest", "write_manifest"]
