"""A persistent faiss index with string ids and JSON metadata in SQLite.

    index = RetrievalIndex(dim=128, factory="HNSW32", fingerprint=fp, modality="image")
    index.add(["img-1", "img-2"], vectors, metadata=[{"label": "7"}, {"label": "3"}])
    hits = index.search(queries, k=5)          # one list of Hit per query, best first
    index.save("runs/idx")                     # atomic
    index = RetrievalIndex.load("runs/idx", expect_fingerprint=fp, expect_dim=128)

Cosine similarity is the inner product of L2-normalised vectors (both sides
are normalised here). Any ``faiss.index_factory`` string works; indexes that
need training (IVF, PQ) are trained on the first vectors added. Flat and HNSW
get ids through ``IndexIDMap2``. Indexes that cannot remove vectors (HNSW)
mark removed ids in SQLite and filter them out of results.

On disk, a directory: ``info.json`` (dimension, metric, factory, model
fingerprint, generation) names the current ``index-<gen>.faiss`` and
``meta-<gen>.sqlite``; a save writes a new generation, then switches
``info.json`` atomically, so a crash never leaves a half-written index.
``info.json`` records the SHA-256 of both files and of itself; loading checks
all three and refuses a mismatch (a flipped byte, a file copied in from
another index).

An IVF index may keep its inverted lists on disk (:mod:`avkit.retrieval.ondisk`,
faiss ``OnDiskInvertedLists``): ``ivfdata-<gen>.ivfdata`` beside the other files,
memory-mapped when loaded, so the index can be larger than RAM. Such an index is
written once and read-only afterwards. Loading checks the data file's size and
the SHA-256 of its first and last MiB; :meth:`RetrievalIndex.verify_data` hashes
all of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from avkit.errors import ArtifactError, AvkitError
from avkit.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    folder_lock,
    new_file_mode,
)
from avkit.retrieval.margin import PROBE_MARGIN, MarginSearch

log = logging.getLogger(__name__)

Metric = Literal["cosine", "l2"]
#: A single query's lists are shared among threads only if it scans this much (``nprobe`` lists of codes):
#: below it, waking the threads costs more than they save. On 2 cores and 1M vectors, sharing broke even
#: between 250 and 500 KB for fast-scan PQ and at about 500 KB for IVF-Flat (docs/benchmarks.md).
SHARE_MIN_BYTES = 512 * 1024
#: k-means iterations for an IVF's centroids (faiss's default is 10). On 1M overlapping vectors, lists trained
#: 25 iterations held 0.965 of the true neighbours at nprobe 128, against 0.957 (docs/benchmarks.md).
IVF_KMEANS_ITERATIONS = 25
FORMAT = 2  # 2: info.json records checksums
#: The fields of ``info.json`` and their types.
INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "dim": int, "metric": str, "factory": str, "fingerprint": str, "modality": str, "generation": int,
    "first_generation": int, "sha256": dict, "search_params": dict, "count": int,
}  # fmt: skip
#: Temporaries of a save (``mkstemp`` names): removed when found, since under the lock they are a dead writer's.
TEMPORARY_FILE = re.compile(r"\.(?:index-\d+\.faiss\.[a-z0-9_]{8}\.faiss|meta-[a-z0-9_]{8}\.sqlite|info\.json\.[a-z0-9_]{8}\.json)")
#: The files of one generation: ``index-N.faiss``, ``meta-N.sqlite`` and, on disk, ``ivfdata-N.ivfdata``.
GENERATION_FILE = re.compile(r"(?:index-(\d+)\.faiss|meta-(\d+)\.sqlite|ivfdata-(\d+)\.ivfdata)")
#: How much of each end of an on-disk data file a load hashes.
EDGE_BYTES = 1 << 20
_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY,          -- the faiss id
    key TEXT NOT NULL,               -- the user's string id
    metadata TEXT NOT NULL,          -- JSON object
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX live_keys ON items(key) WHERE removed = 0;
"""


class RetrievalError(AvkitError):
    """A retrieval-index operation that cannot be done as asked (duplicate id, too little training data)."""


@dataclass(frozen=True)
class Hit:
    """One search result: the item's id, its score (cosine similarity, or -L2 distance), its metadata."""

    key: str
    score: float
    metadata: dict[str, Any]


def _as_matrix(x: Any, dim: int, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise RetrievalError(f"{what}: expected vectors of shape (N, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise RetrievalError(f"{what}: vectors contain NaN or Inf")
    return arr


class RetrievalIndex:
    """faiss vectors + SQLite ids and metadata; see the module docstring.

    Args:
        dim: vector dimension.
        factory: a ``faiss.index_factory`` string (``Flat``, ``HNSW32``, ``IVF256,Flat``, ``IVF256,PQ16``).
        metric: ``cosine`` (normalised inner product) or ``l2``.
        fingerprint: the embedding model's fingerprint; queries must come from the same model.
        modality: what the vectors embed (recorded, shown, and checked by callers).
        search_params: search parameters, e.g. ``{"nprobe": 16}``, ``{"efSearch": 64}`` or
            ``{"nprobe": 256, "probe_margin": 0.3}`` (:meth:`set_search_params`).
    """

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        metric: Metric = "cosine",
        fingerprint: str = "",
        modality: str = "",
        search_params: dict[str, float] | None = None,
    ) -> None:
        if metric not in ("cosine", "l2"):
            raise RetrievalError(f"metric must be 'cosine' or 'l2', got {metric!r}")
        if dim < 1:
            raise RetrievalError(f"dim must be positive, got {dim}")
        self.dim, self.factory, self.metric = dim, factory, metric
        self.fingerprint, self.modality = fingerprint, modality
        self.index = self._build(dim, factory, metric)
        self.source: tuple[Path, int] | None = None  # (directory, generation) this index was loaded from
        self.data_file: Path | None = None  # on disk: the inverted lists' file (avkit.retrieval.ondisk)
        self._parts: tuple[faiss.Index, faiss.IndexIVF | None, MarginSearch | None] | None = None  # _search_parts
        self._data_sha256: str | None = None  # its recorded SHA-256, from info.json at load
        self.operating_point: dict[str, Any] | None = None  # how search_params were chosen (avkit.retrieval.tuning)
        self.search_params: dict[str, float] = {}
        self.set_search_params(search_params or {})
        self.db = sqlite3.connect(":memory:")
        self.db.executescript(_SCHEMA)

    @staticmethod
    def _build(dim: int, factory: str, metric: Metric) -> faiss.Index:
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        try:
            index = faiss.index_factory(dim, factory, faiss_metric)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "invalid"
            raise RetrievalError(f"factory {factory!r} is not a valid faiss index_factory string ({first})") from None
        top = faiss.downcast_index(index)
        native = faiss.try_extract_index_ivf(index) is not None and not isinstance(top, faiss.IndexRefine)
        if not native and not isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            index = faiss.IndexIDMap2(index)  # Flat, HNSW, PQ, refined IVF... take custom ids only through an id map
        return index

    def set_search_params(self, params: dict[str, float]) -> None:
        """Set search parameters, checked now rather than at the first query: faiss's (``nprobe``,
        ``efSearch``, ``k_factor_rf``...: positive integers) and avkit's ``probe_margin`` (a positive number;
        :mod:`avkit.retrieval.margin`).

        Raises:
            RetrievalError: a value out of range, or a parameter this index type lacks.
        """
        for name, value in params.items():
            if name == PROBE_MARGIN:
                self._check_probe_margin(value)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RetrievalError(f"search parameter {name} must be a positive integer, got {value!r}")
            try:
                faiss.ParameterSpace().set_index_parameter(self.index, name, value)
            except RuntimeError:
                raise RetrievalError(f"search parameter {name} does not apply to a {self.factory!r} index "
                                     "(nprobe is for IVF indexes, efSearch for HNSW)") from None  # fmt: skip
        self.search_params.update(params)

    def _check_probe_margin(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise RetrievalError(f"search parameter {PROBE_MARGIN} must be a positive number, got {value!r}")
        try:
            MarginSearch.of(self.index)
        except ValueError as exc:
            raise RetrievalError(f"search parameter {PROBE_MARGIN} does not apply to a {self.factory!r} index: "
                                 f"{exc}") from None  # fmt: skip

    def replace_search_params(self, params: dict[str, float]) -> None:
        """Record ``params`` in place of the search parameters recorded so far (``set_search_params`` adds to
        them), setting each on the faiss index; those left out keep their current value there."""
        self.search_params = {}
        self.set_search_params(params)

    # -- contents ----------------------------------------------------------
    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM items WHERE removed = 0").fetchone()[0]

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM items WHERE key = ? AND removed = 0", (key,)).fetchone() is not None

    def keys(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT key FROM items WHERE removed = 0 ORDER BY id")]

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors

    def add(
        self,
        keys: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any]] | None = None,
        replace: bool = False,
    ) -> None:
        """Add vectors ``(N, dim)`` under string ids ``keys``.

        Raises:
            RetrievalError: a key repeats within ``keys``, or is already indexed and
                ``replace`` is False; shapes do not match; too few vectors to train.
        """
        self._writable("add to")
        vecs = self._prepare(_as_matrix(vectors, self.dim, "add"))
        keys = [str(k) for k in keys]
        metadata = list(metadata) if metadata is not None else [{} for _ in keys]
        if not (len(keys) == len(vecs) == len(metadata)):
            raise RetrievalError(f"add: {len(keys)} ids, {len(vecs)} vectors and {len(metadata)} metadata rows differ")
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise RetrievalError(f"add: id {dup!r} appears more than once in this batch")
        present = [k for k in keys if k in self]
        if present and not replace:
            raise RetrievalError(f"add: {len(present)} id(s) already in the index, e.g. {present[0]!r}; "
                              "pass replace=True (--replace) to overwrite them")  # fmt: skip
        if present:
            self.remove(present)
        if len(keys) == 0:
            return
        if not self.index.is_trained:
            self._train(vecs)
        self._contents_changed()
        start = self.db.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM items").fetchone()[0]
        ids = np.arange(start, start + len(keys), dtype=np.int64)
        self.index.add_with_ids(vecs, ids)
        self._record_items(ids, keys, metadata)
        self.db.commit()

    def _record_items(self, ids: np.ndarray, keys: Sequence[str], metadata: Sequence[dict[str, Any]]) -> None:
        """Store the string ids and metadata of vectors added under faiss ids ``ids`` (not committed)."""
        self.db.executemany("INSERT INTO items (id, key, metadata) VALUES (?, ?, ?)",
                            [(int(i), k, json.dumps(m)) for i, k, m in zip(ids, keys, metadata)])  # fmt: skip

    def train(self, vectors: Any) -> None:
        """Train an index that needs it (IVF, PQ) on ``vectors (N, dim)``, e.g. a sample of several files,
        before adding; otherwise the first ``add`` trains it on what it adds."""
        if not self.index.is_trained:
            self._train(self._prepare(_as_matrix(vectors, self.dim, "train")))

    def _writable(self, what: str) -> None:
        if self.data_file is not None:
            raise RetrievalError(f"cannot {what} an on-disk index ({self.data_file.parent}): it is written once; "
                                 "build it again with every embeddings file (avkit index build --on-disk)")  # fmt: skip

    def _contents_changed(self) -> None:
        if self.operating_point is not None:
            log.info("the index's contents changed: its measured operating point is dropped (tune it again)")
            self.operating_point = None

    def _train(self, vecs: np.ndarray) -> None:
        ivf = faiss.try_extract_index_ivf(self.index)
        needed = ivf.nlist if ivf is not None else 256
        if len(vecs) < needed:
            raise RetrievalError(f"factory {self.factory!r} must be trained on at least {needed} vectors, "
                              f"got {len(vecs)}; add more at once or use a smaller index (e.g. Flat)")  # fmt: skip
        if ivf is not None:
            ivf.cp.niter = IVF_KMEANS_ITERATIONS
        log.info("training %s on %d vectors", self.factory, len(vecs))
        self.index.train(vecs)

    def remove(self, keys: Sequence[str]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        self._writable("remove from")
        rows = [self.db.execute("SELECT id FROM items WHERE key = ? AND removed = 0", (str(k),)).fetchone() for k in keys]
        ids = np.array([r[0] for r in rows if r is not None], dtype=np.int64)
        if len(ids) == 0:
            return 0
        self._contents_changed()
        try:
            self.index.remove_ids(ids)
            self.db.executemany("DELETE FROM items WHERE id = ?", [(int(i),) for i in ids])
        except RuntimeError:  # e.g. HNSW: keep the vectors, hide them from results
            self.db.executemany("UPDATE items SET removed = 1 WHERE id = ?", [(int(i),) for i in ids])
        self.db.commit()
        return len(ids)

    # -- search ------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, share_lists: bool | None = None) -> list[list[Hit]]:
        """The ``k`` nearest items for each query ``(Q, dim)``, best first.

        An empty index gives empty lists; ``k`` larger than the index gives every item.
        ``share_lists``: as for :meth:`faiss_search`.
        """
        if k < 1:
            raise RetrievalError(f"k must be at least 1, got {k}")
        q = self._prepare(_as_matrix(queries, self.dim, "search"))
        hidden = self.db.execute("SELECT COUNT(*) FROM items WHERE removed = 1").fetchone()[0]
        k_fetch = min(k + hidden, self.index.ntotal)
        if k_fetch == 0:
            return [[] for _ in range(len(q))]
        scores, ids = self.faiss_search(q, k_fetch, share_lists)
        if self.metric == "l2":
            scores = -scores
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        rows = {}
        for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
            part = wanted[start : start + 900]
            sql = f"SELECT id, key, metadata FROM items WHERE removed = 0 AND id IN ({','.join('?' * len(part))})"
            rows.update({r[0]: (r[1], r[2]) for r in self.db.execute(sql, part)})
        out = []
        for srow, irow in zip(scores, ids):
            hits = [Hit(rows[i][0], float(s), self._metadata(*rows[i])) for s, i in zip(srow, irow) if i in rows]
            out.append(hits[:k])
        return out

    def faiss_search(self, queries: np.ndarray, k: int, share_lists: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """faiss's scores and ids ``(Q, k)`` for prepared queries ``(Q, dim)``, at this index's search parameters.

        faiss shares a batch's queries among its threads. A batch smaller than the thread count (one query
        from a service) would leave threads idle, so an IVF index then shares each query's inverted lists
        among them instead, if a query scans at least ``SHARE_MIN_BYTES`` of codes (``share_lists`` None:
        decided so; docs/benchmarks.md measures it). The setting lasts for this search only. A service
        that runs queries in threads of its own passes ``share_lists=False``, and a lock: an index, its
        SQLite connection included, serves one thread at a time.
        """
        ivf, by_margin = self._search_parts()
        if ivf is None:
            return self.index.search(queries, k)
        if share_lists is None:
            share_lists = should_share_lists(ivf, len(queries), faiss.omp_get_max_threads())
        if PROBE_MARGIN in self.search_params:
            return by_margin.search(queries, k, self.search_params[PROBE_MARGIN], lists_shared(ivf, share_lists))
        with lists_shared(ivf, share_lists):
            return self.index.search(queries, k)

    def _search_parts(self) -> tuple[faiss.IndexIVF | None, MarginSearch | None]:
        """The faiss index's IVF (its own class) and its parts for a search by margin (None for either it
        lacks), found once per faiss index rather than on every query (the downcasts cost about 10 µs)."""
        if self._parts is None or self._parts[0] is not self.index:
            ivf = faiss.try_extract_index_ivf(self.index)
            try:
                by_margin = MarginSearch.of(self.index)
            except ValueError:
                by_margin = None
            self._parts = (self.index, faiss.downcast_index(ivf) if ivf is not None else None, by_margin)
        return self._parts[1], self._parts[2]

    def _metadata(self, key: str, text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            where = f"{self.source[0]}: " if self.source else ""
            raise RetrievalError(f"{where}the index's metadata of id {key!r} is not a JSON object; the index is damaged")
        return value

    # -- persistence -------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"format": FORMAT, "dim": self.dim, "metric": self.metric, "factory": self.factory,
                "fingerprint": self.fingerprint, "modality": self.modality, "count": len(self),
                "search_params": self.search_params, "operating_point": self.operating_point,
                "on_disk": self.data_file is not None}  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the index directory atomically: a new generation, then ``info.json`` pointing at it.

        Holds the directory's writer lock. The previous generation is kept for readers that
        opened ``info.json`` just before the switch; older ones are removed, and so are
        temporaries left by killed writers. Only generations this folder's index wrote (from
        ``first_generation`` in ``info.json``) are ever removed: other files are left alone,
        whatever their names.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ArtifactError(path, "exists and is not an index directory")
        with folder_lock(path, "index"):
            gen, first = self._next_generation(path)
            for stale in path.iterdir():  # under the lock, any temporary of ours is a dead writer's
                if TEMPORARY_FILE.fullmatch(stale.name):
                    stale.unlink(missing_ok=True)
            sums = {}
            if self.data_file is not None:
                sums["ivfdata"] = self._place_data_file(path, gen)
            faiss_bytes = faiss.serialize_index(self.index)
            atomic_write_bytes(path / f"index-{gen}.faiss", faiss_bytes.tobytes())
            fd, tmp = tempfile.mkstemp(dir=path, prefix=".meta-", suffix=".sqlite")
            os.fchmod(fd, new_file_mode())
            os.close(fd)
            try:
                with contextlib.closing(sqlite3.connect(tmp)) as dest:
                    self.db.backup(dest)
                meta_sum = _sha256(Path(tmp).read_bytes())
                os.replace(tmp, path / f"meta-{gen}.sqlite")
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            info = {**self.info(), "generation": gen, "first_generation": first,
                    "sha256": {"faiss": _sha256(faiss_bytes), "meta": meta_sum, **sums}}  # fmt: skip
            atomic_write_json(path / "info.json", {**info, "info_sha256": _sha256(_canonical(info))})
            self.source = (path.resolve(), gen)
            for stale in path.iterdir():
                match = GENERATION_FILE.fullmatch(stale.name)
                if match and first <= _generation(match) < gen - 1:
                    stale.unlink(missing_ok=True)

    def _place_data_file(self, path: Path, gen: int) -> dict[str, Any]:
        """Move a new on-disk index's data file to ``ivfdata-<gen>.ivfdata`` in ``path``; its size and digests."""
        if self.source is not None:
            raise RetrievalError(f"an on-disk index is written once; {self.source[0]} cannot be saved again")
        target = path / f"ivfdata-{gen}.ivfdata"
        if self.data_file.parent.resolve() != path.resolve():
            raise RetrievalError(f"an on-disk index is saved into the folder it was built in ({self.data_file.parent}), not {path}")
        os.replace(self.data_file, target)  # the mapping follows the file: same inode
        _ondisk_lists(self.index).filename = str(target)
        self.data_file = target
        log.info("hashing %s (%.1f MB)", target, target.stat().st_size / 1e6)
        self._data_sha256 = file_sha256(target)
        return {"name": target.name, "bytes": target.stat().st_size, "sha256": self._data_sha256,
                "edges": _edge_digest(target)}  # fmt: skip

    def verify_data(self) -> None:
        """Hash an on-disk index's whole data file against info.json (loading checks only its ends)."""
        if self.data_file is None or self._data_sha256 is None:
            return
        if file_sha256(self.data_file) != self._data_sha256:
            raise ArtifactError(self.data_file, "on-disk inverted lists do not match the checksum in info.json; "
                                "the file is damaged: build the index again")  # fmt: skip

    def _next_generation(self, path: Path) -> tuple[int, int]:
        """The generation a save into ``path`` writes, and the first generation of its index there.

        An index loaded from ``path`` must still be at the generation it was loaded from (or two
        programs that load, add and save would each drop the other's items). A new index replaces
        whatever is there, even a damaged one, with a generation above any file present; it takes
        over the files of a readable index it replaces, and no others.
        """
        loaded_here = self.source is not None and self.source[0] == path.resolve()
        old = None
        if (path / "info.json").is_file():
            try:
                old = _read_info(path)
            except ArtifactError as exc:
                if loaded_here:
                    raise
                log.warning("replacing a damaged or older index; its files are left as they are: %s", exc)
        if loaded_here:
            if old is None or old["generation"] != self.source[1]:
                now = "removed" if old is None else f"saved by another writer (generation {old['generation']})"
                raise ArtifactError(path, f"was {now} since this index was loaded (generation {self.source[1]}); "
                                    "load it again and redo the change")  # fmt: skip
            return old["generation"] + 1, old["first_generation"]
        found = [_generation(m) for f in path.iterdir() if (m := GENERATION_FILE.fullmatch(f.name))]
        gen = max([*found, old["generation"] if old else -1]) + 1
        return gen, old["first_generation"] if old else gen

    @classmethod
    def load(
        cls,
        path: str | Path,
        expect_dim: int | None = None,
        expect_metric: str | None = None,
        expect_fingerprint: str | None = None,
    ) -> RetrievalIndex:
        """Open a saved index, refusing one that does not match what the caller will query with.

        Raises:
            ArtifactError: missing or corrupt files, or a dimension, metric or
                model fingerprint other than the expected one.
        """
        path = Path(path)
        info = _read_info(path)
        try:
            return cls._load(path, info, expect_dim, expect_metric, expect_fingerprint)
        except ArtifactError:
            again = _read_info(path)
            if again["generation"] == info["generation"]:
                raise
            log.info("%s switched to generation %d while being read; reading that", path, again["generation"])
            return cls._load(path, again, expect_dim, expect_metric, expect_fingerprint)

    @classmethod
    def _load(cls, path: Path, info: dict[str, Any], expect_dim: int | None, expect_metric: str | None,
              expect_fingerprint: str | None) -> RetrievalIndex:  # fmt: skip
        for what, expected, actual in (("dimension", expect_dim, info["dim"]), ("metric", expect_metric, info["metric"]),
                                       ("embedding model", expect_fingerprint, info["fingerprint"])):  # fmt: skip
            if expected is not None and expected != actual:
                raise ArtifactError(path, f"index was built with {what} {actual!r}, but the query uses {expected!r}; "
                                    "rebuild the index with the same checkpoint (avkit embed, then avkit index build)")  # fmt: skip
        self = cls.__new__(cls)
        self._parts = None
        self.source = (path.resolve(), info["generation"])
        self.operating_point = info.get("operating_point") if isinstance(info.get("operating_point"), dict) else None
        self.dim, self.factory, self.metric = info["dim"], info["factory"], info["metric"]
        self.fingerprint, self.modality = info["fingerprint"], info["modality"]
        gen = info["generation"]
        faiss_file, meta_file = path / f"index-{gen}.faiss", path / f"meta-{gen}.sqlite"
        faiss_bytes = _read_checked(faiss_file, info["sha256"]["faiss"], "faiss index")
        data = info["sha256"].get("ivfdata")
        self.data_file = path / data["name"] if isinstance(data, dict) else None
        self._data_sha256 = data.get("sha256") if isinstance(data, dict) else None  # what verify_data checks
        try:
            if self.data_file is not None:  # the lists stay in their file, mapped; the small part was checked above
                _check_data_file(self.data_file, data, gen)
                self.index = faiss.read_index(str(faiss_file), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
            else:
                self.index = faiss.deserialize_index(np.frombuffer(faiss_bytes, dtype=np.uint8))
        except (RuntimeError, MemoryError) as exc:
            raise ArtifactError(faiss_file, f"corrupt faiss index ({str(exc).strip().splitlines()[-1]})") from None
        meta_bytes = _read_checked(meta_file, info["sha256"]["meta"], "id/metadata database")
        try:
            self.db = sqlite3.connect(":memory:")
            self.db.deserialize(meta_bytes)
            self.db.execute("SELECT id, key, metadata, removed FROM items LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise ArtifactError(meta_file, f"corrupt id/metadata database ({exc})") from None
        rows = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        if self.index.d != self.dim or self.index.ntotal != rows:
            raise ArtifactError(path, f"faiss file ({self.index.ntotal} vectors of dim {self.index.d}) and "
                                f"metadata ({rows} rows, dim {self.dim}) disagree; the index is damaged")  # fmt: skip
        try:
            self.replace_search_params(info.get("search_params") or {})
        except RetrievalError as exc:
            raise ArtifactError(path / "info.json", str(exc)) from None
        return self


def should_share_lists(ivf: faiss.IndexIVF, queries: int, threads: int) -> bool:
    """Whether a search of ``queries`` should share each query's inverted lists among ``threads``: fewer
    queries than threads, at least ``SHARE_MIN_BYTES`` of codes to scan per query (``nprobe`` lists of the
    mean length), and an index whose shared search is the same search (``max_codes``, which caps the codes
    scanned, is not checked when faiss shares the lists, so an index with it set is left alone)."""
    if queries >= threads or ivf.max_codes:
        return False
    return ivf.nprobe * ivf.ntotal / max(ivf.nlist, 1) * ivf.code_size >= SHARE_MIN_BYTES


@contextlib.contextmanager
def lists_shared(ivf: faiss.IndexIVF, share: bool) -> Iterator[None]:
    """Within the block, search ``ivf`` in parallel over each query's inverted lists if ``share`` (else as
    it is set: by default faiss's split by query); afterwards the index is as it was (the setting would
    be saved with it). Fast-scan PQ does it with faiss's search implementation 15 (multithreaded over
    queries x lists, results in reservoirs; blocks of 32 codes only), other IVF indexes with
    ``parallel_mode`` 1. Other fast-scan codes (additive, RaBitQ) were not measured, and are left alone."""
    if isinstance(ivf, faiss.IndexIVFPQFastScan) and ivf.bbs == 32:
        attribute, value = "implem", 15
    elif isinstance(ivf, faiss.IndexIVFFastScan):
        share = False
    else:
        attribute, value = "parallel_mode", 1
    if not share:
        yield
        return
    previous = getattr(ivf, attribute)
    setattr(ivf, attribute, value)
    try:
        yield
    finally:
        setattr(ivf, attribute, previous)


def _sha256(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(memoryview(data)).hexdigest()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def _read_checked(file: Path, expected: str, what: str) -> bytes:
    """The bytes of ``file``, refused (ArtifactError) unless their SHA-256 is ``expected``."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ArtifactError(file, f"missing or unreadable {what} ({exc.strerror})") from None
    if _sha256(data) != expected:
        raise ArtifactError(file, f"{what} does not match the checksum in info.json: the file is damaged, "
                            "or was copied in from another index")  # fmt: skip
    return data


def _generation(match: re.Match[str]) -> int:
    return int(next(g for g in match.groups() if g is not None))


def _ondisk_lists(index: faiss.Index) -> Any:
    return faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)


def _edge_digest(file: Path) -> str:
    """SHA-256 of a file's first and last :data:`EDGE_BYTES` (and its size): a check that costs the same at any size."""
    size = file.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with file.open("rb") as handle:
        h.update(handle.read(EDGE_BYTES))
        handle.seek(max(size - EDGE_BYTES, 0))
        h.update(handle.read(EDGE_BYTES))
    return h.hexdigest()


def _check_data_file(file: Path, recorded: dict[str, Any], gen: int) -> None:
    if file.name != f"ivfdata-{gen}.ivfdata":
        raise ArtifactError(file.parent / "info.json", f"names the data file {file.name!r}, not ivfdata-{gen}.ivfdata; "
                            "the file is damaged")  # fmt: skip
    if not file.is_file():
        raise ArtifactError(file, "missing: the index's on-disk inverted lists; build the index again")
    if file.stat().st_size != recorded.get("bytes") or _edge_digest(file) != recorded.get("edges"):
        raise ArtifactError(file, f"on-disk inverted lists of {file.stat().st_size:,} bytes do not match info.json "
                            f"({recorded.get('bytes'):,} bytes and checksums): the file is damaged, or was copied in "
                            "from another index")  # fmt: skip


def _read_info(path: Path) -> dict[str, Any]:
    info_file = path / "info.json"
    if not info_file.is_file():
        raise ArtifactError(path, "not an index directory (no info.json); build one with avkit index build")
    try:
        info = json.loads(info_file.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(info_file, f"corrupt or unreadable index info ({exc})") from None
    if not isinstance(info, dict):
        raise ArtifactError(info_file, f"corrupt index info (a JSON {type(info).__name__}, expected an object)")
    if info.get("format") != FORMAT:
        raise ArtifactError(info_file, f"index format {info.get('format')!r}; this avkit reads format {FORMAT}. "
                            "Rebuild the index with avkit index build")  # fmt: skip
    recorded = info.pop("info_sha256", None)
    if recorded != _sha256(_canonical(info)):
        raise ArtifactError(info_file, "index info does not match its checksum; the file is damaged")
    for name, types in INFO_FIELDS.items():
        if not isinstance(info.get(name), types) or isinstance(info.get(name), bool):
            raise ArtifactError(info_file, f"index info field {name!r} is {info.get(name)!r}; the file is damaged")
    if not all(isinstance(info["sha256"].get(k), str) for k in ("faiss", "meta")):
        raise ArtifactError(info_file, "index info lacks the checksums of its files; the file is damaged")
    return info
