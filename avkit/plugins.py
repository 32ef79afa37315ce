"""Plugins: a user's own file or module that registers modalities, encoders or heads.

    avkit --plugin docs/examples/regression_head.py train config.toml
    AVKIT_PLUGINS=my_lab.heads:my_lab/depth.py avkit embed ...

A plugin is imported once, before the command runs; whatever it registers is
then available by name, like the built-ins.
"""

from __future__ import annotations

import importlib
import logging
import runpy
from collections.abc import Iterable
from pathlib import Path

from avkit.errors import ConfigError

log = logging.getLogger(__name__)
_loaded: set[str] = set()


def load_plugins(plugins: Iterable[str]) -> None:
    """Import each ``.py`` file (run as a script) or dotted module name, once.

    Raises:
        ConfigError: a file that does not exist, a module that cannot be imported, or a plugin
            that fails while it runs (the plugin's own error is its ``__cause__``).
    """
    for spec in plugins:
        key = str(Path(spec).resolve()) if spec.endswith(".py") else spec  # one file, however it is spelled
        if key in _loaded:
            continue
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"plugin {spec}: file does not exist")
            try:
                runpy.run_path(str(path), run_name=f"avkit_plugin_{path.stem}")
            except Exception as exc:  # the user's code: any error, told as the plugin's
                raise ConfigError(f"plugin {spec} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
        else:
            try:
                importlib.import_module(spec)
            except ImportError as exc:
                raise ConfigError(f"plugin {spec}: cannot be imported ({exc})") from None
            except Exception as exc:
                raise ConfigError(f"plugin {spec} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
        _loaded.add(key)
        log.debug("loaded plugin %s", spec)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
