"""Models: encoders (registered by name), and later heads and composed models."""

from avkit.models.encoders import create_encoder, list_encoders

__all__ = ["create_encoder", "list_encoders"]
