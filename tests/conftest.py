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
