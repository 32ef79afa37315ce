"""--target-recall: the fastest search setting that reaches a recall, measured on held-out queries."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from avkit.retrieval.index import RetrievalError, RetrievalIndex
from avkit.retrieval.tuning import margins, tune_search


def _clustered(n: int, dim: int = 32, clusters: int = 50, spread: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    return centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)


def _recall(index: RetrievalIndex, x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of ``index.search`` for queries that are not in the index, against exact cosine search."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-qn @ xn.T, axis=1)[:, :k]
    found = [[int(h.key) for h in row] for row in index.search(queries, k)]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def test_the_chosen_setting_reaches_the_target_on_fresh_queries_and_a_cheaper_one_does_not(tmp_path):
    data = _clustered(20500)
    x, fresh = data[:20000], data[20000:]  # fresh queries: the same clusters, never indexed
    index = RetrievalIndex(32, "IVF256,Flat")
    index.add([str(i) for i in range(len(x))], x)
    point = tune_search(index, x, target_recall=0.95, sample=500)
    assert point.recall >= 0.95 and index.search_params == point.params and point.params["nprobe"] >= 2
    assert _recall(index, x, fresh) >= 0.93  # held-out estimate, checked on queries it never saw
    cheaper = {"nprobe": point.params["nprobe"] // 2}
    if "probe_margin" in point.params:  # and the next narrower margin (half the lists for the median query), if any
        narrower = [m for m in margins(index, index._prepare(x[:500])) if m < point.params["probe_margin"]]
        cheaper["probe_margin"] = max(narrower, default=point.params["probe_margin"])
    index.set_search_params(cheaper)
    assert _recall(index, x, fresh) < 0.95  # the next cheaper setting misses: the choice is the fastest
    index.set_search_params(point.params)
    index.save(tmp_path / "idx")
    loaded = RetrievalIndex.load(tmp_path / "idx")
    assert loaded.search_params == point.params and loaded.operating_point["recall"] == point.recall


@pytest.mark.parametrize("factory", ["HNSW16", "IVF64,PQ16x4fs,RFlat", "IVF64_HNSW16,Flat"])
def test_every_index_family_is_tuned_through_its_own_parameters(factory):
    x = _clustered(5000)
    index = RetrievalIndex(32, factory)
    index.add([str(i) for i in range(len(x))], x)
    point = tune_search(index, x, target_recall=0.9, sample=300)
    assert point.recall >= 0.9 and set(point.params) <= {"efSearch", "nprobe", "k_factor_rf", "quantizer_efSearch",
                                                         "probe_margin"}  # fmt: skip
    assert point.params


def test_an_unreachable_target_says_the_best_reached(capsys):
    x = _clustered(5000, spread=2.0)
    index = RetrievalIndex(32, "IVF64,PQ4x4fs", search_params={"nprobe": 3})  # 4 sub-quantizers of 4 bits: too coarse
    index.add([str(i) for i in range(len(x))], x)
    with pytest.raises(RetrievalError, match=r"no search setting of 'IVF64,PQ4x4fs' reaches recall@10 0.99; the best it reached is 0\.\d+"):
        tune_search(index, x, target_recall=0.99, sample=200)
    assert index.search_params == {"nprobe": 3} and index.operating_point is None  # as it was
    assert faiss.extract_index_ivf(index.index).nprobe == 3
    with pytest.raises(RetrievalError, match="target recall must be in"):
        tune_search(index, x, target_recall=1.5)


def test_the_cli_records_the_operating_point_and_refuses_mixed_settings(tmp_path, capsys):
    import json

    import torch

    from avkit.cli import main
    from avkit.retrieval import Embeddings, save_embeddings

    x = _clustered(3000)
    save_embeddings(tmp_path / "e.safetensors", Embeddings(torch.from_numpy(x), [f"i{i}" for i in range(3000)],
                                                           [None] * 3000, [""] * 3000, "audio", "fp"))  # fmt: skip
    build = ["index", "build", "--embeddings", str(tmp_path / "e.safetensors"), "--out", str(tmp_path / "idx"),
             "--factory", "IVF32,Flat"]  # fmt: skip
    assert main([*build, "--target-recall", "0.95", "--nprobe", "4"]) == 2
    assert "--target-recall chooses the search setting itself" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*build, "--target-recall", "95"])
    assert "a recall in (0, 1], got '95'" in capsys.readouterr().err
    assert main([*build, "--target-recall", "0.95", "--tune-queries", "200"]) == 0
    assert "search setting {'nprobe':" in capsys.readouterr().out
    info = json.loads((tmp_path / "idx" / "info.json").read_text())
    assert info["operating_point"]["target_recall"] == 0.95 and info["search_params"] == info["operating_point"]["params"]


def test_exact_neighbours_in_chunks_equal_one_search_and_leave_each_query_out():
    from avkit.retrieval.tuning import exact_neighbours

    x = _clustered(500)
    index = RetrievalIndex(32)
    rows = np.array([0, 17, 499])
    _, whole = exact_neighbours(x, rows, 10, index._prepare, "cosine", chunk=10_000)
    _, chunked = exact_neighbours(x, rows, 10, index._prepare, "cosine", chunk=7)
    assert np.array_equal(whole, chunked) and not any(r in t for r, t in zip(rows, whole))


def test_several_files_train_an_ivf_on_all_of_them_and_a_change_drops_the_operating_point():
    import torch

    from avkit.retrieval import Embeddings, build_index

    x = _clustered(3000)
    parts = [Embeddings(torch.from_numpy(x[a:b]), [str(i) for i in range(a, b)], [None] * (b - a), [""] * (b - a),
                        "audio", "fp") for a, b in ((0, 100), (100, 3000))]  # fmt: skip
    index = build_index(parts, "IVF256,Flat")  # the first file alone is too small to train 256 lists
    assert len(index) == 3000
    tune_search(index, x, target_recall=0.9, sample=200)
    assert index.operating_point is not None
    index.add(["new"], x[:1])
    assert index.operating_point is None  # the recall it recorded is no longer measured


def test_embed_needs_both_rank_and_world_size(monkeypatch, tmp_path, capsys):
    from avkit.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    args = ["embed", "--checkpoint", str(tmp_path), "--manifest", "m.jsonl", "--modality", "image", "--out", "e"]
    assert main(args) == 2 and "no checkpoints" in capsys.readouterr().err  # the checkpoint is checked first
    from avkit.cli_matching import _rank_and_world
    from avkit.errors import ConfigError

    with pytest.raises(ConfigError, match="WORLD_SIZE=2 but no RANK: every process would write the same file"):
        _rank_and_world()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "1")
    assert _rank_and_world() == (0, 1)  # one process: RANK does not matter


def test_the_tuner_tries_probe_margins_each_named_by_the_lists_the_median_query_finds(caplog):
    import logging

    data = _clustered(20500)
    x, fresh = data[:20000], data[20000:]
    index = RetrievalIndex(32, "IVF256,Flat")
    index.add([str(i) for i in range(len(x))], x)
    queries = index._prepare(x[:300])
    found = margins(index, queries)
    assert list(found) == sorted(found) and list(found.values()) == sorted(found.values()) and max(found.values()) <= 128
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index.index))
    scores, _ = ivf.quantizer.search(queries, ivf.nlist)
    for margin, lists in found.items():  # the median query finds about that many lists within the margin
        within = np.median(np.sum(scores >= scores[:, :1] - margin, axis=1))
        assert lists / 1.5 <= within <= lists * 1.5, (margin, lists, within)
    assert margins(RetrievalIndex(32, "HNSW16"), queries) == {}
    with caplog.at_level(logging.INFO, logger="avkit.retrieval.tuning"):
        point = tune_search(index, x, target_recall=0.95, sample=500)
    assert any("probe_margin=" in line for line in caplog.messages)  # margins were measured
    assert index.search_params == point.params and _recall(index, x, fresh) >= 0.93
