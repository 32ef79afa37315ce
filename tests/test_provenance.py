"""What a run records about where it ran: the CPU and the kernels it used."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from avkit.provenance import KERNEL_VARIABLES, cpu_model, environment_info


def test_cpu_model_reads_the_model_name(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU @ 2.60GHz\nflags\t: avx2\n")
    assert cpu_model(info) == "Example CPU @ 2.60GHz"


def test_cpu_model_falls_back_to_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model(tmp_path / "missing") == "arm"
    (tmp_path / "empty").write_text("processor\t: 0\n")
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model(tmp_path / "empty") is None


def test_environment_records_kernel_level_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KERNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    info = environment_info(seed=3)
    assert info["seed"] == 3 and info["kernel_overrides"] == {}
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert environment_info()["kernel_overrides"] == {"ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"}
