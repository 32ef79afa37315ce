"""Shared fixtures: a small AV-digits build (once per session) and test signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avkit.data.digits import DigitsConfig, build_digits


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a small AV-digits build (100 pairs), shared read-only by the session."""
    out = tmp_path_factory.mktemp("digits")
    build_digits(out, DigitsConfig(size="small", seed=0))
    return out


@pytest.fixture
def speechlike() -> np.ndarray:
    """One second at 16 kHz: a harmonic tone with vibrato plus noise, float32."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))) / 16000
    sig = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2 + 0.01 * rng.standard_normal(16000)
    return sig.astype(np.float32)


def tiny_config(manifest: Path, out: Path, **overrides: object) -> dict:
    """A run config (model included) small enough for a test to train in seconds.

    ``overrides`` are dotted keys, e.g. ``**{"optim.epochs": 3, "model.heads": {...}}``.
    """
    cfg: dict = {
        "model": {
            "towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}},
                       "image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}}},
            "heads": {"contrastive": {"towers": ["audio", "image"]}},
            "embed_dim": 16,
        },
        "data": {"manifest": str(manifest)},
        "out": str(out), "seed": 0, "checkpoint_every": 3, "log_every": 1,
        "optim": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "warmup_steps": 2},
    }  # fmt: skip
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    """Write a config dict as JSON (the loader takes TOML or JSON)."""
    import json

    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="session")
def trained_run(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny contrastive run on the small AV-digits build, trained once per session."""
    from avkit.config import from_dict
    from avkit.train import RunConfig, train

    out = tmp_path_factory.mktemp("runs") / "contrastive"
    train(from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", out)))
    return out
