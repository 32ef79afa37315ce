"""A name -> factory registry, in the manner of timm's ``register_model``.

    ENCODERS = Registry("encoder")

    @ENCODERS.register("logmel_cnn")
    class LogMelCNN(nn.Module): ...

    ENCODERS.create("logmel_cnn", embed_dim=128)
    ENCODERS.names("logmel*")
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from avkit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind (encoders, heads, losses, modalities)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register a class or function under ``name`` (default: its ``__name__``)."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            key = name or factory.__name__
            if key in self._factories and self._factories[key] is not factory:
                raise ConfigError(f"{self.kind} {key!r} is already registered")
            self._factories[key] = factory
            return factory

        return wrap

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the ``name`` entry with ``kwargs``; unknown names list the known ones."""
        factory = self.get(name)
        try:  # check the arguments against the signature, so a TypeError inside the factory stays a bug
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: bad arguments {sorted(kwargs)} ({exc})") from None
        return factory(**kwargs)

    def unregister(self, name: str) -> None:
        """Remove ``name`` if present (for tests and deliberate replacement)."""
        self._factories.pop(name, None)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        if name not in self._factories:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {self.names()} (one of your own? "
                              "load the file that registers it: avkit --plugin FILE)")
        return self._factories[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style ``pattern``."""
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._factories
