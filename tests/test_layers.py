"""Package dependencies point one way (docs/architecture.md): media -> data -> models -> train -> CLI.

Every ``import avkit.X`` in the package is checked against the layer table, so a
shortcut the wrong way (training code in retrieval, models in data) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "avkit"
CORE = {"errors", "fileio", "config", "registry", "provenance", "progress", "plotting", "artifacts", "plugins",
        "reporting"}
MEDIA = {"audio", "vision", "video"}
#: package -> the avkit packages it may import (besides itself).
ALLOWED = {
    "core": CORE,
    "audio": CORE,
    "vision": CORE,
    "video": CORE,
    "modalities": CORE | MEDIA,
    "data": CORE | MEDIA | {"modalities"},
    "evaluation": CORE,
    "losses": CORE,
    "models": CORE | MEDIA | {"modalities", "data", "evaluation", "losses"},
    "retrieval": CORE | MEDIA | {"modalities", "data", "evaluation"},
    "localization": CORE | MEDIA | {"modalities", "data", "evaluation", "models"},
    "translation": CORE | MEDIA | {"modalities", "data", "evaluation", "models"},
    "train": CORE | MEDIA | {"modalities", "data", "evaluation", "losses", "models"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "cli" if rel.stem in ("cli", "cli_data", "cli_matching", "cli_localization", "cli_translation", "__main__", "__init__") else "core"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "avkit" and len(parts) > 1:
                found.add(parts[1] if parts[1] not in CORE else "core")
    return found


def test_every_import_follows_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer == "cli":
            continue
        allowed = ALLOWED[layer] | {layer, "core"}  # every layer may use the core modules
        for target in _imports(path):
            if target not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} ({layer}) imports avkit.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_imports_and_would_refuse_a_wrong_one():
    assert "models" in _imports(PACKAGE / "train" / "engine.py")
    assert "data" in _imports(PACKAGE / "retrieval" / "embeddings.py")
    assert "models" not in ALLOWED["retrieval"] and "train" not in ALLOWED["models"] and "models" not in ALLOWED["data"]
