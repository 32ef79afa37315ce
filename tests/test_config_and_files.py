"""Configs from files with overrides; atomic writes that never leave half a file."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from avkit.config import load_config, to_dict
from avkit.errors import ConfigError
from avkit.fileio import atomic_open, atomic_write_text


@dataclass
class Inner:
    size: str = "default"
    ranges: tuple[float, float] = (1.0, 2.0)


@dataclass
class Outer:
    seed: int = 0
    lr: float = 0.1
    flag: bool = False
    name: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n[inner]\nsize = "small"\n')
    cfg = load_config(Outer, path, ["lr=0.5", "flag=true", "inner.ranges=[3, 4]"])
    assert cfg == Outer(seed=3, lr=0.5, flag=True, inner=Inner("small", (3.0, 4.0)))
    assert to_dict(cfg)["inner"]["ranges"] == [3.0, 4.0]


@pytest.mark.parametrize(
    "overrides,message",
    [(["nope=1"], r"unknown setting\(s\) \['nope'\]"), (["seed=abc"], "seed: expected int"),
     (["inner.colour=1"], r"\['inner.colour'\]"), (["flag=maybe"], "flag: expected true or false"),
     (["seed"], "must look like key=value")],  # fmt: skip
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("seed = = 1")
    with pytest.raises(ConfigError, match="bad.toml: invalid config"):
        load_config(Outer, tmp_path / "bad.toml")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "result.txt"
    atomic_write_text(path, "good")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write(b"half of a new")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_and_index_files_respect_the_umask(tmp_path, umask, mode):
    import os

    import torch

    from avkit.retrieval.index import RetrievalIndex

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        index = RetrievalIndex(4)
        index.add([f"i{k}" for k in range(4)], torch.eye(4).numpy())
        index.save(tmp_path / "index")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    written = [p for p in (tmp_path / "index").iterdir()]
    assert written and all(p.stat().st_mode & 0o777 == mode for p in written), [oct(p.stat().st_mode) for p in written]


@contextlib.contextmanager
def held_by_another_process(folder: Path, what: str):
    """A child process holding ``folder_lock(folder, what)`` for the block; yields its pid."""
    code = ("import sys, time\nfrom avkit.fileio import folder_lock\n"
            "with folder_lock(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(60)\n")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code, str(folder), what], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_second_writer_of_a_folder_is_refused_with_the_holders_pid(tmp_path, capsys):
    import torch

    from avkit.cli import main
    from avkit.errors import ArtifactError
    from avkit.fileio import folder_lock
    from avkit.retrieval import save_embeddings
    from avkit.retrieval.embeddings import Embeddings
    from avkit.retrieval.index import RetrievalIndex

    index = RetrievalIndex(4)
    index.add([f"i{k}" for k in range(4)], torch.eye(4).numpy())
    index.save(tmp_path / "index")
    emb = Embeddings(torch.eye(4)[:2], ["n0", "n1"], [None, None], ["", ""], "", "", "")
    save_embeddings(tmp_path / "more.safetensors", emb)
    with held_by_another_process(tmp_path / "index", "index") as pid:
        with pytest.raises(ArtifactError, match=rf"process {pid} is writing this index"):
            with folder_lock(tmp_path / "index", "index"):
                pass
        code = main(["index", "add", "--index", str(tmp_path / "index"), "--embeddings", str(tmp_path / "more.safetensors")])
        assert code == 2 and f"process {pid} is writing this index" in capsys.readouterr().err
    with folder_lock(tmp_path / "index", "index"), folder_lock(tmp_path / "index", "index"):
        pass  # one process may nest its own lock (a command around a library call)
    assert main(["index", "add", "--index", str(tmp_path / "index"), "--embeddings", str(tmp_path / "more.safetensors")]) == 0
    assert "4 -> 6 items" in capsys.readouterr().out  # released: the next writer goes ahead


def test_a_second_training_into_one_run_directory_is_refused(small_digits, tmp_path):
    from avkit.config import from_dict
    from avkit.errors import ArtifactError
    from avkit.train import RunConfig, train
    from tests.conftest import tiny_config

    cfg = from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", tmp_path / "run"))
    with held_by_another_process(tmp_path / "run", "training run") as pid:
        with pytest.raises(ArtifactError, match=rf"process {pid} is writing this training run"):
            train(cfg)
    assert not (tmp_path / "run" / "config.json").exists()


def test_config_files_that_are_binary_or_not_an_object_are_named(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match=r"bin\.toml: invalid config"):
        load_config(Outer, tmp_path / "bin.toml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"list\.json: invalid config \(a JSON list; expected an object"):
        load_config(Outer, tmp_path / "list.json")


def test_two_real_index_add_processes_never_lose_an_update(tmp_path):
    """Two `avkit index add` started together: the index ends with every item that was reported added."""
    import json

    import torch

    from avkit.retrieval import save_embeddings
    from avkit.retrieval.embeddings import Embeddings
    from avkit.retrieval.index import RetrievalIndex

    index = RetrievalIndex(4)
    index.add([f"i{k}" for k in range(4)], torch.eye(4).numpy())
    index.save(tmp_path / "index")
    for name in ("a", "b"):
        emb = Embeddings(torch.rand(50, 4), [f"{name}{k}" for k in range(50)], [None] * 50, [""] * 50, "", "", "")
        save_embeddings(tmp_path / f"{name}.safetensors", emb)
    procs = [subprocess.Popen([sys.executable, "-m", "avkit", "index", "add", "--index", str(tmp_path / "index"),
                               "--embeddings", str(tmp_path / f"{n}.safetensors")], stderr=subprocess.PIPE, text=True)
             for n in ("a", "b")]  # fmt: skip
    results = [(p.wait(), p.stderr.read()) for p in procs]
    added = 50 * sum(code == 0 for code, _ in results)
    assert json.loads((tmp_path / "index" / "info.json").read_text())["count"] == 4 + added >= 54
    for code, err in results:
        assert code == 0 or (code == 2 and "is writing this index" in err), err


def test_a_lock_on_a_file_is_refused_clearly(tmp_path):
    from avkit.errors import ArtifactError
    from avkit.fileio import folder_lock

    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match="is a file, not a folder; the index needs a folder of its own"):
        with folder_lock(tmp_path / "f", "index"):
            pass
