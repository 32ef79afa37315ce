"""The retrieval benchmark's synthetic data and its difficulty measure (benchmarks/retrieval.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location("retrieval_benchmark", Path(__file__).parents[1] / "benchmarks" / "retrieval.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up there
_SPEC.loader.exec_module(bench)


@pytest.mark.parametrize("m", [4, 16])
def test_lid_of_distances_growing_as_a_power_is_that_power(m: int) -> None:
    """In m dimensions at uniform density, the i-th of k neighbours lies at r_i = (i / k)^(1/m) (in the
    mean): the maximum-likelihood LID of those distances is m, up to the estimator's finite-k bias."""
    k = 2000
    r = (np.arange(1, k + 1) / k) ** (1 / m) * 0.5
    similarities = (1 - r**2 / 2)[None, :]  # unit vectors at chordal distance r
    expected = m * (k - 1) / -np.sum(np.log(np.arange(1, k) / k))  # the exact value of -1/mean(log(r_i/r_k))
    assert bench.local_intrinsic_dimension(similarities) == pytest.approx(expected, rel=1e-6)
    assert bench.local_intrinsic_dimension(similarities) == pytest.approx(m, rel=0.01)


def test_settings_vectors_are_unit_norm_and_the_anisotropic_spectrum_decays() -> None:
    iso = bench.Setting(noise=1.0).vectors(20_000, 32, clusters=1000, seed=0)
    aniso = bench.Setting(noise=1.0, decay=1.0).vectors(20_000, 32, clusters=1000, seed=0)
    top4 = {}
    for name, x in (("iso", iso), ("aniso", aniso)):
        assert x.shape == (20_000, 32) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
        eig, vec = np.linalg.eigh(np.cov(x.T))
        top4[name] = eig[::-1][:4].sum() / eig.sum()
        if name == "aniso":  # the spectrum lies along random directions, not the axes (PQ splits the axes)
            assert np.abs(vec[:, -1]).max() < 0.9
    # isotropic: 4 of 32 directions hold about 4/32 of the variance; variance ∝ 1/i: about 2.08/4.06 of it
    assert top4["iso"] < 0.2 and top4["aniso"] > 0.4, top4
    assert bench.Setting(1.0).effective_dimension(32) == pytest.approx(32)
    assert bench.Setting(1.0, decay=1.0).effective_dimension(128) == pytest.approx(18.0, abs=0.1)


def test_flat_batch1_denominator_is_its_faster_thread_count() -> None:
    """Every ratio divides by Flat's batch-1 QPS at its better thread count (one, or all), and the thread count
    is left as it was."""
    import argparse

    import faiss

    threads = faiss.omp_get_max_threads()
    args = argparse.Namespace(n=3000, queries=40, single=4, dim=128, clusters=50, seed=0)
    rows, _ = bench.run_setting("separated", bench.SETTINGS["separated"], args)
    flat = next(r for r in rows if r["family"] == "Flat")
    assert set(flat["qps1_by_threads"]) == {1, threads}
    assert flat["qps1"] == max(flat["qps1_by_threads"].values())
    assert all(r["x1"] == pytest.approx(r["qps1"] / flat["qps1"]) for r in rows)
    assert all(r["qps1_by_threads"] == {} for r in rows if r["family"] != "Flat")
    assert faiss.omp_get_max_threads() == threads
    # the paired measurement: each family's candidate points, and only those
    for family in {r["family"] for r in rows} - {"Flat"}:
        chosen = {id(r) for r in bench.paired_candidates([r for r in rows if r["family"] == family])}
        assert {id(r) for r in rows if r["family"] == family and "px1" in r} == chosen
    assert any("px1" in r for r in rows) and all(r["px1"] > 0 and r["pxb"] > 0 for r in rows if "px1" in r)


def test_paired_candidates_include_a_point_fastest_at_neither_batch_size() -> None:
    """A: 200x / 8x, B: 60x / 20x, C: 120x / 12x, D: 300x / 30x but recall 0.9. Only C meets both targets,
    and it is the fastest at neither batch size: it must still be timed again; D never (recall)."""
    a, b, c, d = ({"x1": x1, "xb": xb, "recall": rec} for x1, xb, rec in
                  ((200, 8, 0.96), (60, 20, 0.97), (120, 12, 0.95), (300, 30, 0.9)))  # fmt: skip
    picked = bench.paired_candidates([a, b, c, d])
    assert sorted(map(id, picked)) == sorted(map(id, (a, b, c)))
    assert bench.paired_candidates([d]) == []


def test_paired_ratios_put_the_index_over_flat() -> None:
    """A cheap IVF search against Flat reads faster than Flat (ratios > 1), and the other way round slower."""
    from avkit.retrieval import RetrievalIndex

    x = bench.Setting(0.5).vectors(20_000, 32, clusters=100, seed=0)
    keys = [str(i) for i in range(len(x))]
    flat, ivf = RetrievalIndex(32, "Flat"), RetrievalIndex(32, "IVF128,Flat")
    flat.add(keys, x)
    ivf.add(keys, x)
    ivf.set_search_params({"nprobe": 1})
    q = x[:200]
    faster = bench.paired_ratios(ivf, flat, 1, q, single=20, rounds=3)
    slower = bench.paired_ratios(flat, ivf, 1, q, single=20, rounds=3)
    assert min(faster) > 1 > max(slower), (faster, slower)


def test_paired_points_are_timed_at_their_own_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paired timing searches each chosen point at that point's parameters (not the sweep's last ones),
    and against Flat."""
    import argparse

    seen = []

    def record(index, flat, flat_threads, q, single, rounds=bench.PAIRED_ROUNDS):
        seen.append((index.factory, dict(index.search_params), flat.factory))
        return 1.0, 1.0

    monkeypatch.setattr(bench, "paired_ratios", record)
    args = argparse.Namespace(n=3000, queries=40, single=4, dim=128, clusters=50, seed=0)
    rows, _ = bench.run_setting("separated", bench.SETTINGS["separated"], args)
    paired = [(r["family"], r["params"], "Flat") for r in rows if "px1" in r]
    assert paired and sorted(map(repr, seen)) == sorted(map(repr, paired))
