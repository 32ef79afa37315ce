"""Corruption is detected on load: checksums of artifacts and indexes, and a fuzz test of mutated files.

Every mutated file must either load cleanly with exactly the original content
(a mutation that changed nothing that is read, such as JSON whitespace) or be
refused with an AvkitError. Anything else, another exception or different
content accepted silently, fails.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avkit.artifacts import save_artifact
from avkit.errors import ArtifactError, AvkitError
from avkit.models.checkpoint import load_checkpoint, save_checkpoint
from avkit.retrieval.embeddings import Embeddings, load_embeddings, save_embeddings
from avkit.retrieval.index import RetrievalIndex

MODEL = {"towers": {"audio": {"encoder": "tiny"}}, "heads": {}}


def _checkpoint(path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    weights = {"enc.weight": torch.randn(16, 8, generator=g), "enc.bias": torch.randn(16, generator=g)}
    save_checkpoint(path, weights, MODEL, {"step": 3, "epoch": 1}, {"optim/0.exp_avg": torch.randn(16, generator=g)})
    return path


def _embeddings(path: Path, n: int = 24) -> Path:
    vectors = torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    ids = [f"item-{i}" for i in range(n)]
    save_embeddings(path, Embeddings(vectors, ids, [str(i % 3) for i in range(n)], [f"/d/{i}.wav" for i in ids],
                                     "audio", "fp-1234"))  # fmt: skip
    return path


def _index(path: Path, seed: int = 2, n: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    idx = RetrievalIndex(8, fingerprint="fp-1234", modality="image")
    idx.add([f"img-{i}" for i in range(n)], rng.standard_normal((n, 8)), [{"label": str(i % 4)} for i in range(n)])
    idx.save(path)
    return path


def _index_files(path: Path) -> dict[str, Path]:
    gen = json.loads((path / "info.json").read_text())["generation"]
    return {"faiss": path / f"index-{gen}.faiss", "meta": path / f"meta-{gen}.sqlite", "info": path / "info.json"}


def _flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


# -- one test per kind of corruption the trial found ------------------------------------------------


def test_a_flipped_bit_in_a_checkpoints_weights_is_refused(tmp_path):
    path = _checkpoint(tmp_path / "c.safetensors")
    _flip_bit(path, path.stat().st_size - 5)  # inside the last tensor's bytes
    with pytest.raises(ArtifactError, match=r"c\.safetensors: tensor '.*' does not match its checksum; the checkpoint"):
        load_checkpoint(path)


def test_a_flipped_bit_in_every_position_of_an_embeddings_vector_block_is_refused(tmp_path):
    path = _embeddings(tmp_path / "e.safetensors")
    good = path.read_bytes()
    start = len(good) - 24 * 8 * 4  # the vectors are the only tensor: the file's last bytes
    for offset in range(start, len(good), 37):
        path.write_bytes(good)
        _flip_bit(path, offset, offset % 8)
        with pytest.raises(ArtifactError, match="tensor 'vectors' does not match its checksum"):
            load_embeddings(path)


def test_an_artifact_without_checksums_or_with_a_changed_header_is_refused(tmp_path):
    path = tmp_path / "e.safetensors"
    from safetensors.torch import save_file

    save_file({"vectors": torch.zeros(2, 4)}, str(path), metadata={"avkit": json.dumps(
        {"kind": "embeddings", "format": 2, "ids": ["a", "b"]})})  # fmt: skip
    with pytest.raises(ArtifactError, match="has no checksums: it was written before avkit recorded them, or is damaged"):
        load_embeddings(path)
    _embeddings(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"fp-1234", b"fp-9234", 1))  # same length: safetensors still parses it
    with pytest.raises(ArtifactError, match="embeddings header does not match its checksum"):
        load_embeddings(path)


def test_headers_that_pass_their_checksum_but_lack_fields_get_clear_errors(tmp_path):
    """What a writer other than avkit could produce: garbled fields, a checkpoint state that is a list."""
    path = tmp_path / "e.safetensors"
    save_artifact(path, "embeddings", {"vectors": torch.zeros(2, 4)}, {"labels": [None, None]}, format=2)
    with pytest.raises(ArtifactError, match="embeddings header lacks 'ids'; the file is damaged"):
        load_embeddings(path)
    save_artifact(path, "embeddings", {"vectors": torch.zeros(2, 4)},
                  {"ids": ["a", "b"], "labels": [None], "paths": ["x", "y"], "modality": "audio", "fingerprint": "f"},
                  format=2)  # fmt: skip
    with pytest.raises(ArtifactError, match=r"2 ids, 1 labels and 2 paths but vectors of shape \(2, 4\)"):
        load_embeddings(path)
    ckpt = tmp_path / "c.safetensors"
    save_artifact(ckpt, "checkpoint", {"model/w": torch.zeros(2)}, {"model": MODEL, "fingerprint": "x", "state": [1, 2]},
                  format=2)  # fmt: skip
    with pytest.raises(ArtifactError, match="checkpoint header field 'state' is a list, expected dict"):
        load_checkpoint(ckpt)
    save_artifact(ckpt, "checkpoint", {"model/w": torch.zeros(2)}, {"model": MODEL, "fingerprint": "x", "state": {}},
                  format=2)  # fmt: skip
    with pytest.raises(ArtifactError, match="weights do not match the checkpoint's fingerprint"):
        load_checkpoint(ckpt)


def test_flipped_vector_bytes_and_a_faiss_file_from_another_index_are_refused(tmp_path):
    a, b = _index(tmp_path / "a", seed=2), _index(tmp_path / "b", seed=3)
    faiss_a = _index_files(a)["faiss"]
    good = faiss_a.read_bytes()
    for offset in range(len(good) - 40 * 8 * 4, len(good) - 400, 97):  # among the vectors (ids follow them)
        faiss_a.write_bytes(good)
        _flip_bit(faiss_a, offset, 3)
        with pytest.raises(ArtifactError, match=r"index-0\.faiss: faiss index does not match the checksum in info\.json"):
            RetrievalIndex.load(a)
    shutil.copyfile(_index_files(b)["faiss"], faiss_a)
    with pytest.raises(ArtifactError, match="or was copied in from another index"):
        RetrievalIndex.load(a)


def test_an_edited_index_info_is_refused(tmp_path):
    path = _index(tmp_path / "idx")
    info = json.loads((path / "info.json").read_text())
    info["search_params"] = {"efSearch": 4}
    (path / "info.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="index info does not match its checksum"):
        RetrievalIndex.load(path)


# -- the fuzz test -----------------------------------------------------------------------------------


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation: a bit flip, a random byte, a truncation, a zeroed run, garbage appended or inserted."""
    kind = rng.choice(["flip", "byte", "truncate", "zeros", "append", "insert"])
    b = bytearray(data)
    at = rng.randrange(len(b))
    if kind == "flip":
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        b[at] = rng.randrange(256)
    elif kind == "truncate":
        del b[at:]
    elif kind == "zeros":
        b[at : at + rng.randint(1, 64)] = bytes(min(64, len(b) - at))
    elif kind == "append":
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    else:
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(b)


def _index_content(path: Path) -> tuple:
    idx = RetrievalIndex.load(path)
    hits = idx.search(np.eye(8, dtype=np.float32), k=5)
    return idx.keys(), [[(h.key, round(h.score, 5), h.metadata) for h in row] for row in hits], idx.search_params


def _artifact_content(path: Path) -> tuple:
    if "ckpt" in path.name:
        c = load_checkpoint(path)
        return json.dumps(c.header, sort_keys=True), {k: v.tolist() for k, v in c.tensors.items()}
    e = load_embeddings(path)
    return e.ids, e.labels, e.paths, e.modality, e.fingerprint, e.vectors.tolist()


CASES = 240


def test_fuzz_mutated_index_checkpoint_and_embeddings_files_load_cleanly_or_are_refused(tmp_path):
    """240 seeded mutations, 48 of each file: the index's faiss, SQLite and info.json, a checkpoint, embeddings.

    Outcomes are counted; none may be a crash, another exception, or a changed file accepted.
    """
    rng = random.Random(11)
    index = _index(tmp_path / "idx")
    targets: list[tuple[Path, object]] = [(p, _index_content) for p in _index_files(index).values()]
    targets += [(_checkpoint(tmp_path / "ckpt.safetensors"), _artifact_content),
                (_embeddings(tmp_path / "emb.safetensors"), _artifact_content)]  # fmt: skip
    reference = {p: (p.read_bytes(), read(index if read is _index_content else p)) for p, read in targets}
    outcomes = {"refused": 0, "same content": 0}
    failures = []
    for case in range(CASES):
        file, read = targets[case % len(targets)]
        original, content = reference[file]
        file.write_bytes(_mutate(original, rng))
        try:
            got = read(index if read is _index_content else file)
        except AvkitError:
            outcomes["refused"] += 1
        except BaseException as exc:  # noqa: BLE001 - the point of the test
            failures.append(f"case {case} on {file.name}: {type(exc).__name__}: {exc}")
        else:
            if got == content:
                outcomes["same content"] += 1
            else:
                failures.append(f"case {case} on {file.name}: a changed file was accepted")
        file.write_bytes(original)
    assert not failures, "\n".join(failures)
    assert sum(outcomes.values()) == CASES and outcomes["refused"] >= CASES * 0.9, outcomes

