"""probe_margin: an IVF query probes only the lists whose centroids score within a margin of its best one."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from avkit.retrieval import RetrievalError, RetrievalIndex

FACTORIES = ["IVF16,Flat", "IVF16,PQ8x4fsr,RFlat", "IVF16,PQ8"]  # native lists; re-ranked behind an id map; 8-bit PQ


def _index(factory: str, metric: str, n: int = 4000, dim: int = 16) -> tuple[RetrievalIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((24, dim)).astype(np.float32)
    x = centres[rng.integers(0, 24, n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    index = RetrievalIndex(dim, factory, metric=metric)
    index.add([str(i) for i in range(n)], x)
    return index, x


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("factory", FACTORIES)
def test_a_margin_wider_than_every_gap_answers_as_faiss_does(factory, metric):
    index, x = _index(factory, metric)
    params = {"nprobe": 6} | ({"k_factor_rf": 4} if "RFlat" in factory else {})
    index.replace_search_params(params)
    queries = index._prepare(x[:100])
    expected = index.faiss_search(queries, 10)
    index.set_search_params({"probe_margin": 1e6})
    scores, ids = index.faiss_search(queries, 10)
    np.testing.assert_array_equal(ids, expected[1])
    np.testing.assert_allclose(scores, expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,PQ8x4fsr,RFlat"])
def test_a_narrow_margin_finds_the_exact_nearest_among_the_lists_within_it(factory, metric):
    """With exact scores (Flat storage, or every candidate re-ranked), the answer is the exact top 10 of the
    vectors filed in the lists whose centroid is within the margin (and among the nprobe nearest)."""
    index, x = _index(factory, metric)
    margin = 0.08 if metric == "cosine" else 4.0
    index.replace_search_params({"nprobe": 12, "probe_margin": margin} | ({"k_factor_rf": 400} if "RFlat" in factory else {}))
    queries, stored = index._prepare(x[:60]), index._prepare(x)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index.index))
    _, filed = ivf.quantizer.search(stored, 1)
    coarse, nearest = ivf.quantizer.search(queries, 12)
    batch = index.faiss_search(queries, 10)[1]  # the coarse step by faiss's search; one at a time, by a scan of all
    single = np.vstack([index.faiss_search(queries[i : i + 1], 10)[1] for i in range(len(queries))])
    probed_counts = []
    for q, scores, lists, ids, ids_single in zip(queries, coarse, nearest, batch, single):
        kept = lists[scores >= scores[0] - margin] if metric == "cosine" else lists[scores <= scores[0] + margin]
        probed_counts.append(len(kept))
        members = np.flatnonzero(np.isin(filed[:, 0], kept))
        exact = stored[members] @ q if metric == "cosine" else -np.sum((stored[members] - q) ** 2, axis=1)
        assert set(ids.tolist()) == set(ids_single.tolist()) == set(members[np.argsort(-exact)[:10]].tolist())
    assert 1 <= min(probed_counts) and max(probed_counts) < 12 and len(set(probed_counts)) > 1  # the margin chose


def test_more_lists_than_the_index_has_and_single_queries_answer_as_a_batch():
    index, x = _index("IVF16,PQ8x4fsr,RFlat", "cosine")
    queries = index._prepare(x[:40])
    index.replace_search_params({"nprobe": 16, "k_factor_rf": 8, "probe_margin": 0.2})
    at_nlist = index.faiss_search(queries, 10)[1]
    before = faiss.serialize_index(index.index).tobytes()
    index.set_search_params({"nprobe": 40})  # more than its 16 lists: as many as it has
    np.testing.assert_array_equal(index.faiss_search(queries, 10)[1], at_nlist)
    assert faiss.extract_index_ivf(index.index).nprobe == 40
    one_at_a_time = np.vstack([index.faiss_search(queries[i : i + 1], 10, share_lists=True)[1] for i in range(40)])
    assert np.mean(one_at_a_time == at_nlist) >= 0.99  # fast-scan's shared search may order near-ties otherwise
    index.set_search_params({"nprobe": 16})
    assert faiss.serialize_index(index.index).tobytes() == before  # nothing of the search stayed in the index


@pytest.mark.parametrize(("factory", "value", "message"), [
    ("Flat", 0.3, "does not apply to a 'Flat' index: it applies to IVF indexes"),
    ("HNSW8", 0.3, "does not apply to a 'HNSW8' index"),
    ("PCA8,IVF4,Flat", 0.3, "without a transform"),
    ("IVF4,PQ4,Refine(SQ8)", 0.3, "its re-ranking must be exact"),
    ("IVF4,Flat", 0, "must be a positive number, got 0"),
    ("IVF4,Flat", -0.1, "must be a positive number"),
    ("IVF4,Flat", float("inf"), "must be a positive number, got inf"),
    ("IVF4,Flat", float("nan"), "must be a positive number, got nan"),
    ("IVF4,Flat", True, "must be a positive number, got True"),
    ("IVF4,Flat", "0.3", "must be a positive number, got '0.3'"),
])  # fmt: skip
def test_a_margin_is_refused_by_name_where_it_does_not_apply(factory, value, message):
    with pytest.raises(RetrievalError, match=message):
        RetrievalIndex(16, factory, search_params={"probe_margin": value})


def test_the_margin_is_saved_with_the_index_and_set_from_the_cli(tmp_path, capsys):
    import json

    import torch

    from avkit.cli import main
    from avkit.retrieval import Embeddings, save_embeddings

    index, x = _index("IVF16,Flat", "cosine")
    index.replace_search_params({"nprobe": 8, "probe_margin": 0.05})
    queries = index._prepare(x[:30])
    expected = index.faiss_search(queries, 10)[1]
    index.save(tmp_path / "idx")
    loaded = RetrievalIndex.load(tmp_path / "idx")
    assert loaded.search_params == {"nprobe": 8, "probe_margin": 0.05}
    np.testing.assert_array_equal(loaded.faiss_search(queries, 10)[1], expected)

    save_embeddings(tmp_path / "e.safetensors", Embeddings(torch.from_numpy(x), [f"i{i}" for i in range(len(x))],
                                                           [None] * len(x), [""] * len(x), "audio", "fp"))  # fmt: skip
    build = ["index", "build", "--embeddings", str(tmp_path / "e.safetensors"), "--out", str(tmp_path / "cli"),
             "--factory", "IVF16,Flat", "--nprobe", "8"]  # fmt: skip
    assert main([*build, "--probe-margin", "0.05"]) == 0
    assert json.loads((tmp_path / "cli" / "info.json").read_text())["search_params"] == {"nprobe": 8, "probe_margin": 0.05}
    with pytest.raises(SystemExit):
        main([*build, "--overwrite", "--probe-margin", "-1"])
    assert "--probe-margin: a positive number, got '-1'" in capsys.readouterr().err
    assert main([*build, "--overwrite", "--probe-margin", "0.05", "--target-recall", "0.9"]) == 2
    assert "drop --nprobe / --probe-margin / --ef-search" in capsys.readouterr().err
    assert main([*build[:-2], "--overwrite", "--probe-margin", "0.05"]) == 2
    assert "--probe-margin needs --nprobe" in capsys.readouterr().err
    assert main([*build[:-4], "--factory", "HNSW8", "--nprobe", "8", "--overwrite", "--probe-margin", "0.05"]) == 2
    assert "does not apply to a 'HNSW8' index" in capsys.readouterr().err


def test_an_empty_batch_results_short_of_k_and_a_capped_scan_answer_as_faiss_does():
    index, x = _index("IVF16,PQ8x4fsr,RFlat", "cosine")
    queries = index._prepare(x[:20])
    index.replace_search_params({"nprobe": 4, "k_factor_rf": 2, "probe_margin": 1e-6})  # the best list alone
    scores, ids = index.faiss_search(queries[:0], 10)
    assert scores.shape == ids.shape == (0, 10) and index.search(x[:0], k=3) == []
    by_margin = index.faiss_search(queries, 400)[1]  # a list holds about 250: the rest are -1, through the id map
    index.replace_search_params({"nprobe": 1, "k_factor_rf": 2})
    np.testing.assert_array_equal(by_margin, index.faiss_search(queries, 400)[1])
    assert (by_margin == -1).any() and (by_margin[:, :10] >= 0).all()

    index, x = _index("IVF16,Flat", "l2")
    queries = index._prepare(x[:20])
    index.replace_search_params({"nprobe": 16, "max_codes": 300})  # every list, but the scan stops after about one
    capped = index.faiss_search(queries, 10)[1]
    index.set_search_params({"probe_margin": 1e9})  # every probed list is within the margin: the same scan
    np.testing.assert_array_equal(index.faiss_search(queries, 10)[1], capped)  # a batch
    single = np.vstack([index.faiss_search(queries[i : i + 1], 10)[1] for i in range(len(queries))])
    np.testing.assert_array_equal(single, capped)  # one at a time: the best lists first, as faiss orders them
