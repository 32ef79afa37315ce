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
    # the paired measurement: each family's fastest points at recall >= 0.95 (at batch 1 and at batch 1000)
    for family in {r["family"] for r in rows} - {"Flat"}:
        reaching = [r for r in rows if r["family"] == family and r["recall"] >= 0.95]
        fastest = {id(max(reaching, key=lambda r: r[k])) for k in ("qps1", "qps_batch")} if reaching else set()
        assert {id(r) for r in rows if r["family"] == family and "px1" in r} == fastest
    assert all(r["px1"] > 0 and r["pxb"] > 0 for r in rows if "px1" in r)


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
