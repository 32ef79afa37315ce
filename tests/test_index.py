"""RetrievalIndex: every factory kind, ids and metadata, persistence, and each bad-input case."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from avkit.errors import ArtifactError
from avkit.retrieval import RetrievalError, RetrievalIndex


def _data(n: int = 600, d: int = 16, seed: int = 0) -> tuple[list[str], np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return [f"k{i}" for i in range(n)], x


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF8,Flat", "IVF8,PQ4"])
def test_add_search_remove_save_load(factory, tmp_path):
    keys, x = _data()
    idx = RetrievalIndex(16, factory, fingerprint="fp", modality="image", search_params={"nprobe": 8} if "IVF" in factory else {})
    idx.add(keys, x, [{"label": str(i % 3)} for i in range(len(keys))])
    hits = idx.search(x[:5], k=3)
    assert len(hits) == 5 and all(len(h) == 3 for h in hits)
    if "PQ" not in factory:  # exact vectors: each finds itself first, with cosine 1
        assert [h[0].key for h in hits] == keys[:5] and hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[1][0].metadata == {"label": "1"}
    assert idx.remove(["k0", "k1", "missing"]) == 2
    assert len(idx) == 598 and "k0" not in idx
    assert all(h.key not in ("k0", "k1") for h in idx.search(x[:2], k=10)[0])
    idx.save(tmp_path / "idx")
    again = RetrievalIndex.load(tmp_path / "idx", expect_dim=16, expect_metric="cosine", expect_fingerprint="fp")
    assert len(again) == 598 and again.keys() == idx.keys()
    assert [h.key for h in again.search(x[5:6], k=4)[0]] == [h.key for h in idx.search(x[5:6], k=4)[0]]


def test_cosine_ignores_vector_length():
    idx = RetrievalIndex(2)
    idx.add(["a", "b"], np.array([[10.0, 0.0], [1.0, 1.0]]))
    hit = idx.search(np.array([[0.1, 0.0]]), k=1)[0][0]
    assert hit.key == "a" and hit.score == pytest.approx(1.0)


def test_empty_index_and_k_larger_than_the_index():
    idx = RetrievalIndex(4)
    assert idx.search(np.ones((2, 4)), k=5) == [[], []]
    idx.add(["a", "b"], np.eye(4)[:2])
    assert [h.key for h in idx.search(np.eye(4)[:1], k=50)[0]] == ["a", "b"]
    with pytest.raises(RetrievalError, match="k must be at least 1"):
        idx.search(np.eye(4)[:1], k=0)


def test_duplicate_ids_are_refused_or_replaced_on_request():
    idx = RetrievalIndex(4)
    idx.add(["a", "b"], np.eye(4)[:2], [{"v": 1}, {"v": 1}])
    with pytest.raises(RetrievalError, match=r"1 id\(s\) already in the index, e.g. 'a'; pass replace=True"):
        idx.add(["a"], np.eye(4)[2:3])
    with pytest.raises(RetrievalError, match="'c' appears more than once"):
        idx.add(["c", "c"], np.eye(4)[2:4])
    idx.add(["a"], np.eye(4)[2:3], [{"v": 2}], replace=True)
    assert len(idx) == 2
    hit = idx.search(np.eye(4)[2:3], k=1)[0][0]
    assert (hit.key, hit.metadata) == ("a", {"v": 2})


def test_hnsw_remove_and_replace_hide_the_old_vector():
    keys, x = _data(300)
    idx = RetrievalIndex(16, "HNSW32")
    idx.add(keys, x)
    idx.add(["k0"], x[1:2], replace=True)  # k0 now holds k1's vector
    assert all(h.key != "k0" or h.score < 0.99 for h in idx.search(x[0:1], k=5)[0])  # old vector hidden
    assert {h.key for h in idx.search(x[1:2], k=2)[0]} == {"k0", "k1"}
    assert len(idx) == 300


def test_bad_shapes_factories_and_training_sizes():
    with pytest.raises(RetrievalError, match=r"expected vectors of shape \(N, 4\), got \(2, 3\)"):
        RetrievalIndex(4).add(["a", "b"], np.ones((2, 3)))
    with pytest.raises(RetrievalError, match="NaN or Inf"):
        RetrievalIndex(4).add(["a"], np.full((1, 4), np.nan))
    with pytest.raises(RetrievalError, match="not a valid faiss index_factory string"):
        RetrievalIndex(4, "NoSuchIndex")
    with pytest.raises(RetrievalError, match="trained on at least 64 vectors, got 10"):
        RetrievalIndex(4, "IVF64,Flat").add([str(i) for i in range(10)], np.ones((10, 4)))


def test_load_refuses_another_model_dimension_or_metric(tmp_path):
    idx = RetrievalIndex(4, fingerprint="model-a", modality="image")
    idx.add(["a"], np.eye(4)[:1])
    idx.save(tmp_path / "idx")
    with pytest.raises(ArtifactError, match="built with embedding model 'model-a', but the query uses 'model-b'"):
        RetrievalIndex.load(tmp_path / "idx", expect_fingerprint="model-b")
    with pytest.raises(ArtifactError, match="built with dimension 4, but the query uses 8"):
        RetrievalIndex.load(tmp_path / "idx", expect_dim=8)
    with pytest.raises(ArtifactError, match="built with metric 'cosine'"):
        RetrievalIndex.load(tmp_path / "idx", expect_metric="l2")
    with pytest.raises(ArtifactError, match="not an index directory"):
        RetrievalIndex.load(tmp_path)


def test_corrupt_files_get_clear_errors(tmp_path):
    idx = RetrievalIndex(4)
    idx.add(["a", "b"], np.eye(4)[:2])
    idx.save(tmp_path / "idx")
    gen = json.loads((tmp_path / "idx" / "info.json").read_text())["generation"]
    faiss_file = tmp_path / "idx" / f"index-{gen}.faiss"
    good = faiss_file.read_bytes()
    faiss_file.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactError, match=r"index-0\.faiss: faiss index does not match the checksum in info.json"):
        RetrievalIndex.load(tmp_path / "idx")
    faiss_file.write_bytes(good)
    (tmp_path / "idx" / f"meta-{gen}.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(ArtifactError, match="id/metadata database does not match the checksum"):
        RetrievalIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / f"meta-{gen}.sqlite").unlink()
    with pytest.raises(ArtifactError, match="missing or unreadable id/metadata database"):
        RetrievalIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "info.json").write_text("{")
    with pytest.raises(ArtifactError, match="corrupt or unreadable index info"):
        RetrievalIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "info.json").write_bytes(bytes(range(256)))
    with pytest.raises(ArtifactError, match="corrupt or unreadable index info"):
        RetrievalIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "info.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="a JSON list, expected an object"):
        RetrievalIndex.load(tmp_path / "idx")


def test_a_failed_save_leaves_the_previous_index_whole(tmp_path, monkeypatch):
    idx = RetrievalIndex(4)
    idx.add(["a"], np.eye(4)[:1])
    idx.save(tmp_path / "idx")
    before = sorted(p.name for p in (tmp_path / "idx").iterdir())
    idx.add(["b"], np.eye(4)[1:2])

    def boom(index: faiss.Index) -> np.ndarray:
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "serialize_index", boom)
    with pytest.raises(OSError, match="disk full"):
        idx.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == before
    assert RetrievalIndex.load(tmp_path / "idx").keys() == ["a"]


def test_save_keeps_the_previous_generation_removes_dead_temporaries_and_leaves_other_files(tmp_path):
    path = tmp_path / "index"
    index = RetrievalIndex(4)
    index.add(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "index-foo.faiss").write_text("not a generation")
    (path / "index-7.faiss").write_text("the user's own file, named like a generation")
    (path / ".meta-k3j9x2qa.sqlite").write_bytes(b"x" * 100)  # a killed writer's temporary (mkstemp's name)
    (path / ".meta-mine.sqlite").write_text("a file of the user's that starts like one")
    for _ in range(3):
        index.save(path)
    names = sorted(p.name for p in path.iterdir())
    assert names == [".meta-mine.sqlite", "index-10.faiss", "index-7.faiss", "index-9.faiss", "index-foo.faiss",
                     "info.json", "meta-10.sqlite", "meta-9.sqlite", "notes.txt"]  # fmt: skip
    assert len(RetrievalIndex.load(path)) == 2


def test_a_reader_that_loses_the_race_with_a_generation_switch_reads_the_new_one(tmp_path, monkeypatch):
    from avkit.retrieval import index as index_module

    path = tmp_path / "index"
    index = index_module.RetrievalIndex(4)
    index.add(["a"], np.eye(4, dtype=np.float32)[:1])
    index.save(path)
    index.save(path)
    index.save(path)  # generation 2; generation 0 is gone
    real = index_module._read_info
    calls = []

    def stale_first(p):
        info = real(p)
        calls.append(1)
        return {**info, "generation": 0} if len(calls) == 1 else info  # read info.json just before the switch

    monkeypatch.setattr(index_module, "_read_info", stale_first)
    assert len(index_module.RetrievalIndex.load(path)) == 1 and len(calls) == 2


def test_index_build_refuses_a_folder_that_is_not_an_index(tmp_path, capsys):
    import torch

    from avkit.cli import main
    from avkit.retrieval import save_embeddings
    from avkit.retrieval.embeddings import Embeddings

    save_embeddings(tmp_path / "e.safetensors", Embeddings(torch.eye(4), list("abcd"), [None] * 4, [""] * 4, "", "", ""))
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    assert main(["index", "build", "--embeddings", str(tmp_path / "e.safetensors"), "--out", str(folder)]) == 2
    assert "not an avkit index" in capsys.readouterr().err
    assert main(["index", "build", "--embeddings", str(tmp_path / "e.safetensors"), "--out", str(folder), "--overwrite"]) == 0
    assert (folder / "holiday.jpg").read_bytes() == b"precious"


@pytest.mark.parametrize("factory, params, message", [
    ("Flat", {"nprobe": 4}, "nprobe does not apply to a 'Flat' index"),
    ("IVF4,Flat", {"nprobe": 0}, "nprobe must be a positive integer"),
    ("HNSW8", {"nprobe": 4}, "does not apply"),
])  # fmt: skip
def test_search_parameters_are_checked_when_the_index_is_built(factory, params, message):
    with pytest.raises(RetrievalError, match=message):
        RetrievalIndex(8, factory, search_params=params)
    RetrievalIndex(8, "IVF4,Flat", search_params={"nprobe": 2})
    RetrievalIndex(8, "HNSW8", search_params={"efSearch": 16})


def test_a_save_over_another_writers_save_is_refused_and_a_new_index_replaces_a_damaged_one(tmp_path):
    """Two programs that load, add and save: the second save would drop the first's items, so it is refused."""
    base = RetrievalIndex(4)
    base.add(["a"], np.eye(4)[:1])
    base.save(tmp_path / "idx")
    first, second = RetrievalIndex.load(tmp_path / "idx"), RetrievalIndex.load(tmp_path / "idx")
    first.add(["b"], np.eye(4)[1:2])
    first.save(tmp_path / "idx")
    second.add(["c"], np.eye(4)[2:3])
    with pytest.raises(ArtifactError, match=r"was saved by another writer \(generation 1\) since this index was loaded"):
        second.save(tmp_path / "idx")
    first.add(["d"], np.eye(4)[3:4])
    first.save(tmp_path / "idx")  # the writer that saved last may save again
    assert RetrievalIndex.load(tmp_path / "idx").keys() == ["a", "b", "d"]
    (tmp_path / "idx" / "info.json").write_text('{"format": 1}')  # damaged, or an older avkit's
    fresh = RetrievalIndex(4)
    fresh.add(["z"], np.eye(4)[:1])
    fresh.save(tmp_path / "idx")  # `avkit index build --overwrite`: a new index replaces it
    assert RetrievalIndex.load(tmp_path / "idx").keys() == ["z"]


def test_index_info_fields_of_the_wrong_type_are_named(tmp_path):
    from avkit.retrieval.index import _canonical, _sha256

    idx = RetrievalIndex(4)
    idx.add(["a"], np.eye(4)[:1])
    idx.save(tmp_path / "idx")
    info = json.loads((tmp_path / "idx" / "info.json").read_text())
    info.pop("info_sha256")
    info["dim"] = "four"  # a writer other than avkit, with a valid checksum
    (tmp_path / "idx" / "info.json").write_text(json.dumps({**info, "info_sha256": _sha256(_canonical(info))}))
    with pytest.raises(ArtifactError, match="index info field 'dim' is 'four'; the file is damaged"):
        RetrievalIndex.load(tmp_path / "idx")


def _embedding_files(tmp_path, parts: int = 3, n: int = 1500) -> tuple[list, np.ndarray]:
    import torch

    from avkit.retrieval.embeddings import Embeddings, save_embeddings

    keys, x = _data(parts * n, seed=4)
    files = []
    for p in range(parts):
        rows = slice(p * n, (p + 1) * n)
        emb = Embeddings(torch.from_numpy(x[rows]), keys[rows], [str(i % 3) for i in range(n)], [f"/f/{k}" for k in keys[rows]],
                         "image", "fp")  # fmt: skip
        files.append(tmp_path / f"emb.rank{p}-of-{parts}.safetensors")
        save_embeddings(files[-1], emb)
    return files, x


@pytest.mark.parametrize("factory", ["IVF32,Flat", "IVF32,PQ8"])
def test_an_on_disk_index_answers_as_the_in_memory_one_and_is_read_only(tmp_path, factory):
    from avkit.retrieval import build_index, load_embeddings
    from avkit.retrieval.ondisk import build_ondisk_index

    files, x = _embedding_files(tmp_path)
    disk = build_ondisk_index(files, tmp_path / "disk", factory, train_size=4500, search_params={"nprobe": 4})
    disk.save(tmp_path / "disk")
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["index-0.faiss", "info.json", "ivfdata-0.ivfdata",
                                                                      "meta-0.sqlite"]  # fmt: skip
    loaded = RetrievalIndex.load(tmp_path / "disk", expect_fingerprint="fp")
    memory = build_index([load_embeddings(f) for f in files], factory, {"nprobe": 4})  # trained on the same 4500
    assert len(loaded) == 4500 and loaded.info()["on_disk"] and not memory.info()["on_disk"]
    got, want = loaded.search(x[::97], k=5), memory.search(x[::97], k=5)
    assert [[h.key for h in q] for q in got] == [[h.key for h in q] for q in want]
    assert got[3][0].metadata == want[3][0].metadata
    if factory.endswith("Flat"):  # exact codes: a vector finds itself first (PQ codes need not)
        assert got[3][0].key == "k291"
    loaded.verify_data()
    with pytest.raises(RetrievalError, match="cannot add to an on-disk index"):
        loaded.add(["new"], x[:1])
    with pytest.raises(RetrievalError, match="cannot remove from an on-disk index"):
        loaded.remove(["k0"])


def test_on_disk_refusals_and_damage_are_named(tmp_path):
    from avkit.retrieval.ondisk import build_ondisk_index

    files, _ = _embedding_files(tmp_path, parts=2, n=20_000)  # 2.9 MB of lists: more than the two MiB a load hashes
    with pytest.raises(RetrievalError, match="on-disk lists need an IVF index with native ids"):
        build_ondisk_index(files, tmp_path / "hnsw", "HNSW32")
    with pytest.raises(RetrievalError, match="fast-scan codes are stored in packed blocks"):
        build_ondisk_index(files, tmp_path / "fastscan", "IVF8,PQ8x4fs", train_size=1000)
    assert not (tmp_path / "hnsw").exists() and not (tmp_path / "fastscan").exists()  # refused before any file
    with pytest.raises(ArtifactError, match="is also in an earlier file"):
        build_ondisk_index([files[0], files[0]], tmp_path / "twice", "IVF8,Flat")
    index = build_ondisk_index(files, tmp_path / "idx", "IVF8,Flat", train_size=1000)
    index.save(tmp_path / "idx")
    data = tmp_path / "idx" / "ivfdata-0.ivfdata"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # in the middle: only the full check sees it
    data.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="do not match the checksum in info.json"):
        RetrievalIndex.load(tmp_path / "idx").verify_data()
    raw[5] ^= 0xFF  # near an end: the load sees it
    data.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"ivfdata-0\.ivfdata: on-disk inverted lists of .* do not match info\.json"):
        RetrievalIndex.load(tmp_path / "idx")
    data.unlink()
    with pytest.raises(ArtifactError, match="missing: the index's on-disk inverted lists"):
        RetrievalIndex.load(tmp_path / "idx")


def test_index_build_on_disk_from_the_cli(tmp_path, capsys):
    from avkit.cli import main

    files, x = _embedding_files(tmp_path, parts=2, n=600)
    out = tmp_path / "idx"
    args = ["index", "build", "--embeddings", *map(str, files), "--out", str(out), "--factory", "IVF8,Flat", "--on-disk"]
    assert main([*args, "--train-size", "1000", "--nprobe", "2"]) == 0
    assert "inverted lists on disk: ivfdata-0.ivfdata" in capsys.readouterr().out
    assert main(["index", "info", str(out), "--verify"]) == 0
    assert json.loads(capsys.readouterr().out)["on_disk"] is True
    assert main(["index", "add", "--index", str(out), "--embeddings", str(files[0])]) == 2
    assert "cannot add to an on-disk index" in capsys.readouterr().err
    assert main([*args[:-1], "--overwrite", "--on-disk", "--target-recall", "0.9"]) == 2
    assert "--target-recall needs every vector in memory" in capsys.readouterr().err


@pytest.mark.parametrize(("factory", "attribute", "shared"), [
    ("IVF8,PQ8x4fs,RFlat", "implem", 15), ("IVF8,PQ8x4fsr", "implem", 15), ("IVF8,Flat", "parallel_mode", 1),
    ("PCA8,IVF8,PQ4", "parallel_mode", 1), ("IVF8,PQ8x4fs_64", "implem", 0)])  # fmt: skip
def test_a_query_can_share_its_inverted_lists_among_the_threads_with_the_same_answers(factory, attribute, shared):
    """Each query's lists split among 2 threads (fast-scan PQ: implementation 15, which needs blocks of 32 codes;
    parallel_mode 1 otherwise) for one search, then the index as it was (the setting is saved with it);
    the answers are those of faiss's split by query (bare fast-scan codes, not re-ranked, may order
    near-equal quantised distances otherwise: 99% of their ids agree)."""
    from avkit.retrieval.index import lists_shared

    keys, x = _data(2000)
    idx = RetrievalIndex(16, factory, search_params={"nprobe": 4})
    idx.add(keys, x)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(idx.index))
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        with lists_shared(ivf, True):
            assert getattr(ivf, attribute) == shared
        assert getattr(ivf, attribute) == 0
        one = [idx.faiss_search(x[i : i + 1], 5, share_lists=True)[1][0] for i in range(20)]
        assert getattr(ivf, attribute) == 0
        batch = idx.faiss_search(x[:20], 5, share_lists=False)[1]
    finally:
        faiss.omp_set_num_threads(previous)
    if "PQ8x4fsr" == factory.split(",")[-1]:
        assert np.mean(np.stack(one) == batch) >= 0.99
    else:
        np.testing.assert_array_equal(np.stack(one), batch)


def test_by_default_only_a_single_query_with_enough_to_scan_shares_its_lists():
    """20,000 vectors of 64 bytes in 4 lists: 2 probed lists are 640 KB to scan, 1 is 320 KB."""
    from avkit.retrieval.index import SHARE_MIN_BYTES, should_share_lists

    keys, x = _data(20_000)
    idx = RetrievalIndex(16, "IVF4,Flat", search_params={"nprobe": 2})
    idx.add(keys, x)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(idx.index))
    assert 10_000 * 64 >= SHARE_MIN_BYTES > 5_000 * 64
    assert should_share_lists(ivf, queries=1, threads=2)
    assert not should_share_lists(ivf, queries=2, threads=2)  # as many queries as threads: faiss's split by query
    assert not should_share_lists(ivf, queries=1, threads=1)
    ivf.nprobe = 1
    assert not should_share_lists(ivf, queries=1, threads=2)  # too little to scan
    ivf.nprobe, ivf.max_codes = 2, 5_000
    assert not should_share_lists(ivf, queries=1, threads=2)  # faiss's shared search ignores max_codes


def test_faiss_search_shares_as_decided_and_leaves_the_index_as_it_was(monkeypatch):
    from avkit.retrieval import index as index_module

    keys, x = _data(20_000)
    idx = RetrievalIndex(16, "IVF4,Flat", search_params={"nprobe": 2})
    idx.add(keys, x)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(idx.index))
    seen = []
    real = index_module.lists_shared
    monkeypatch.setattr(index_module, "lists_shared", lambda i, share: seen.append(share) or real(i, share))
    monkeypatch.setattr(index_module, "should_share_lists", lambda i, queries, threads: queries == 1)
    before = faiss.serialize_index(idx.index).tobytes()
    idx.search(x[:1], k=3)
    idx.search(x[:3], k=3)
    idx.search(x[:1], k=3, share_lists=False)
    assert seen == [True, False, False] and ivf.parallel_mode == 0
    assert faiss.serialize_index(idx.index).tobytes() == before
