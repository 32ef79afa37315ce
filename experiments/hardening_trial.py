"""The hardening trial, re-run: bad and hostile inputs against the CLI, counted (issue 11's acceptance).

    python experiments/hardening_trial.py [--out runs/hardening-trial] [--mutations 60] [--kills 12] [--seed 0]

Builds a small AV-digits set, trains a tiny model, embeds and indexes it, then
runs each case as a fresh ``python -m avkit ...`` process and counts four
failures:

- **traceback**: a Python traceback on stdout/stderr, or an exit status other
  than 0 (success) or 2 (a clear error), such as a crash by signal;
- **write outside its place**: any file of the trial folder created, changed or
  removed other than the case's own outputs (every file is hashed before and
  after), or a file appearing outside the folder;
- **lost update**: concurrent writers whose results do not add up;
- **corruption accepted**: a damaged index, checkpoint or embeddings file that
  a command used without an error and with output different from the intact
  file's; an index that no longer loads after its writer was killed; a killed
  training that does not resume to the uninterrupted run's weights.

Prints one table (cases and failures per group) and the failing cases, and
writes ``report.json`` (each case: command, exit status, first error line,
verdicts) with the seed and commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_integrity import _mutate  # noqa: E402 - the fuzz test's mutations, run through the CLI

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class Outcome:
    group: str
    name: str
    argv: list[str]
    status: int
    seconds: float
    error: str = ""
    failures: list[str] = field(default_factory=list)


def avkit(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([PY, "-m", "avkit", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder``: its SHA-256 (lock files excluded: they come and go)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != ".avkit.lock":
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Trial:
    def __init__(self, work: Path, seed: int) -> None:
        self.work, self.rng = work, random.Random(seed)
        self.outcomes: list[Outcome] = []
        self.victim = work.parent / f"{work.name}-outside"  # what a path escape would hit

    # -- one case ----------------------------------------------------------------------------------
    def case(self, group: str, name: str, args: list[str], outputs: tuple[str, ...] = (), expect: str = "any",
             check: Callable[[int, str, str], list[str]] | None = None, env: dict[str, str] | None = None) -> Outcome:  # fmt: skip
        """Run ``avkit args``; ``outputs``: paths (relative to the work folder) the case may write.

        ``expect``: ``error`` (must exit 2), ``problems`` (``data check`` found some: exit 1),
        ``ok`` (must exit 0) or ``any``.
        """
        before, outside = snapshot(self.work), snapshot(self.victim)
        status, out, err, seconds = avkit(*args, env=env)
        failures = []
        clean = (0, 1, 2) if args[:2] == ["data", "check"] else (0, 2)  # data check: 1 = problems found
        if "Traceback (most recent call last)" in out + err or status not in clean:
            failures.append(f"traceback (exit {status}): {(err.strip().splitlines() or [''])[-1][:200]}")
        if expect == "error" and status != 2:
            failures.append(f"expected a clear error (exit 2), got exit {status}")
        if expect == "problems" and status != 1:
            failures.append(f"expected problems reported (exit 1), got exit {status}")
        if expect == "ok" and status != 0:
            failures.append(f"expected success, got exit {status}: {err.strip()[:200]}")
        after = snapshot(self.work)
        allowed = tuple(o.rstrip("/") for o in outputs)
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        stray = sorted(p for p in changed if not any(p == a or p.startswith(a + "/") for a in allowed))
        if stray:
            failures.append(f"write outside its place: {stray[:5]}")
        if snapshot(self.victim) != outside:
            failures.append("write outside the trial folder")
        if check is not None:
            failures += check(status, out, err)
        error = next((line for line in err.splitlines() if "error" in line.lower()), "")
        outcome = Outcome(group, name, args, status, round(seconds, 2), error[:300], failures)
        self.outcomes.append(outcome)
        mark = "FAIL" if failures else "ok"
        print(f"  [{mark:4s}] {group:12s} {name:58s} exit {status} {seconds:5.1f}s", flush=True)
        return outcome

    def w(self, rel: str) -> str:
        return str(self.work / rel)


def write_manifest(path: Path, rows: list[dict], bom: bool = False) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def setup(t: Trial) -> dict[str, str]:
    """Data, a tiny trained model, embeddings and an index: what the cases attack."""
    w = t.work
    t.victim.mkdir(parents=True, exist_ok=True)
    (t.victim / "precious.txt").write_text("must not change\n")
    steps = [
        ["data", "digits", "--out", t.w("digits"), "--size", "small"],
        ["train", t.w("config.json")],
        ["embed", "--checkpoint", t.w("run"), "--manifest", t.w("digits/manifest.jsonl"), "--modality", "image",
         "--out", t.w("img.safetensors")],
        ["embed", "--checkpoint", t.w("run"), "--manifest", t.w("digits/manifest.jsonl"), "--modality", "image",
         "--split", "test", "--out", t.w("img-test.safetensors")],
        ["index", "build", "--embeddings", t.w("img-test.safetensors"), "--out", t.w("idx")],
    ]  # fmt: skip
    config = {
        "model": {"towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}},
                             "image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}}},
                  "heads": {"contrastive": {"towers": ["audio", "image"]}}, "embed_dim": 16},
        "data": {"manifest": t.w("digits/manifest.jsonl")}, "out": t.w("run"), "seed": 0,
        "optim": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "warmup_steps": 2}, "checkpoint_every": 3,
    }  # fmt: skip
    (w / "config.json").write_text(json.dumps(config))
    for args in steps:
        status, _, err, seconds = avkit(*args)
        if status != 0:
            raise SystemExit(f"setup step failed: avkit {' '.join(args)}\n{err}")
        print(f"  setup: avkit {' '.join(args[:2])} ({seconds:.1f} s)", flush=True)
    manifest = [json.loads(line) for line in (w / "digits/manifest.jsonl").read_text().splitlines()]
    return {"wav": t.w("digits/" + manifest[0]["audio"]), "png": t.w("digits/" + manifest[0]["image"]),
            "rows": json.dumps(manifest)}  # fmt: skip


# -- the groups of cases ------------------------------------------------------------------------------


def paths_and_places(t: Trial, f: dict[str, str]) -> None:
    rows = json.loads(f["rows"])
    digits = t.work / "digits"
    hostile = {
        "id with ../": f"../../{t.victim.name}/images/x",
        "absolute id": str(t.victim / "abs"),
        "id with a control character": "bad\x07id",
        "id with a slash": "a/b",
        "id '..'": "..",
    }
    for name, rid in hostile.items():
        m = t.work / f"m-{len(t.outcomes)}.jsonl"
        write_manifest(m, [{**rows[0], "id": rid}] + rows[1:6])
        t.case("paths", f"data scenes: {name}", ["data", "scenes", "--from", str(m), "--out", t.w("scenes-a")],
               outputs=("scenes-a",))  # fmt: skip
        t.case("paths", f"data check: {name}", ["data", "check", str(m)], expect="problems",
               check=lambda s, o, e: [] if "line 1" in o + e or ":1:" in o + e else ["unsafe id not reported by line"])
        shutil.rmtree(t.work / "scenes-a", ignore_errors=True)
    m = t.work / "m-passwd.jsonl"
    write_manifest(m, [{**rows[0], "audio": "/etc/passwd"}] + rows[1:6])
    t.case("paths", "data scenes: audio is /etc/passwd", ["data", "scenes", "--from", str(m), "--out", t.w("scenes-b")],
           outputs=("scenes-b",),
           check=lambda s, o, e: ["/etc/passwd copied"] if any(
               (p.read_bytes()[:4] == b"root") for p in (t.work / "scenes-b").rglob("*") if p.is_file()) else [])  # fmt: skip
    shutil.rmtree(t.work / "scenes-b", ignore_errors=True)
    t.case("paths", "features M --out M", ["features", str(digits / "manifest.jsonl"), "--out", str(digits / "manifest.jsonl")],
           expect="error")  # fmt: skip
    (t.work / "notes").mkdir(exist_ok=True)
    (t.work / "notes" / "thesis.txt").write_text("two years of work\n")
    (t.work / "notes" / "index-7.faiss").write_text("a file of the user's that happens to have this name\n")
    t.case("paths", "index build into a folder that is not an index", ["index", "build", "--embeddings",
           t.w("img-test.safetensors"), "--out", t.w("notes")], expect="error")  # fmt: skip
    mine = {p.name: p.read_bytes() for p in (t.work / "notes").iterdir()}
    t.case("paths", "... with --overwrite: other files left alone", ["index", "build", "--embeddings",
           t.w("img-test.safetensors"), "--out", t.w("notes"), "--overwrite"], expect="ok", outputs=("notes",),
           check=lambda s, o, e: [f"the user's {n} changed" for n, data in mine.items()
                                  if not (t.work / "notes" / n).is_file() or (t.work / "notes" / n).read_bytes() != data])  # fmt: skip
    shutil.copytree(t.work / "idx", t.work / "idx-stale")
    (t.work / "idx-stale" / ".index-3.faiss.k3j9x2qa.faiss").write_bytes(os.urandom(1 << 20))
    t.case("paths", "index build over stale temporaries of a killed build", ["index", "build", "--embeddings",
           t.w("img-test.safetensors"), "--out", t.w("idx-stale"), "--overwrite"], expect="ok", outputs=("idx-stale",),
           check=lambda s, o, e: ["stale temporary left"] if (t.work / "idx-stale" / ".index-3.faiss.k3j9x2qa.faiss").exists() else [])  # fmt: skip
    # a gallery whose metadata points at /etc/passwd and at a decompression bomb
    bomb = t.work / "bomb.png"
    Image.new("L", (12000, 12000)).save(bomb, optimize=True)
    from avkit.retrieval import (  # the files moved on after indexing
        load_embeddings,
        save_embeddings,
    )

    emb = load_embeddings(t.work / "img-test.safetensors")
    emb.paths[:2] = ["/etc/passwd", str(bomb)]
    save_embeddings(t.work / "gallery.safetensors", emb)
    avkit("index", "build", "--embeddings", t.w("gallery.safetensors"), "--out", t.w("idx-gallery"))
    t.case("paths", "query --gallery over unreadable and huge results", ["query", "--index", t.w("idx-gallery"),
           "--checkpoint", t.w("run"), "--image", f["png"], "-k", "20", "--gallery", t.w("gallery.png")], expect="ok",
           outputs=("gallery.png",),
           check=lambda s, o, e: [] if e.count("gallery: cannot draw") >= 2 else ["bad tiles not reported"])  # fmt: skip
    t.case("paths", "umask 022: artifacts are 0644, not 0600", ["index", "build", "--embeddings",
           t.w("img-test.safetensors"), "--out", t.w("idx-mode")], expect="ok", outputs=("idx-mode",),
           check=lambda s, o, e: [f"mode {oct(p.stat().st_mode & 0o777)} on {p.name}" for p in (t.work / "idx-mode").iterdir()
                                  if p.stat().st_mode & 0o777 != 0o644])  # fmt: skip


def concurrency(t: Trial, f: dict[str, str]) -> None:
    # two `index add` at once: exactly one adds (the other is refused), or both add in turn; nothing lost
    for name, n in (("a", 8), ("b", 8)):
        rows = [{**r, "id": f"{name}-{r['id']}", "split": "test", "audio": "digits/" + r["audio"],
                 "image": "digits/" + r["image"]} for r in json.loads(f["rows"])[:n]]  # fmt: skip
        write_manifest(t.work / f"add-{name}.jsonl", rows)
        # ids are new, images the same: the adds must not collide on ids
        status, _, err, _ = avkit("embed", "--checkpoint", t.w("run"), "--manifest", t.w(f"add-{name}.jsonl"), "--modality", "image",
              "--out", t.w(f"add-{name}.safetensors"))  # fmt: skip
        if status != 0:
            raise SystemExit(f"setup of the concurrency cases failed: {err}")
    shutil.copytree(t.work / "idx", t.work / "idx-conc")
    before = json.loads((t.work / "idx-conc" / "info.json").read_text())["count"]
    for attempt in range(5):
        procs = [subprocess.Popen([PY, "-m", "avkit", "index", "add", "--index", t.w("idx-conc"), "--embeddings",
                                   t.w(f"add-{name}.safetensors")], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in ("a", "b")]  # fmt: skip
        results = [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]
        count = json.loads((t.work / "idx-conc" / "info.json").read_text())["count"]
        added = sum(8 for status, _, _ in results if status == 0)
        failures = []
        if count != before + added:
            failures.append(f"lost update: {before} + {added} added = {before + added}, index holds {count}")
        for status, _out, err in results:
            if status not in (0, 2) or "Traceback" in err:
                failures.append(f"traceback (exit {status})")
            if status == 2 and "is writing this index" not in err:
                failures.append(f"refused without naming the holder: {err.strip()[:120]}")
        t.outcomes.append(Outcome("concurrency", f"two index add at once, try {attempt + 1}", ["index", "add", "x2"],
                                  max(r[0] for r in results), 0.0, "", failures))  # fmt: skip
        print(f"  [{'FAIL' if failures else 'ok':4s}] concurrency  two index add at once: {before} -> {count} "
              f"(exits {[r[0] for r in results]})", flush=True)  # fmt: skip
        shutil.rmtree(t.work / "idx-conc")  # the next try starts from the same index
        shutil.copytree(t.work / "idx", t.work / "idx-conc")
    # two trainings into one run directory
    cfg = json.loads((t.work / "config.json").read_text())
    for attempt in range(2):
        out = t.work / f"run-conc-{attempt}"
        paths = []
        for seed in (1, 2):
            c = {**cfg, "out": str(out), "seed": seed, "optim": {**cfg["optim"], "epochs": 1}}
            (t.work / f"conc-{seed}.json").write_text(json.dumps(c))
            paths.append(t.w(f"conc-{seed}.json"))
        procs = [subprocess.Popen([PY, "-m", "avkit", "-q", "train", p], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for p in paths]  # fmt: skip
        results = [(p.wait(), p.stderr.read()) for p in procs]
        failures = []
        wins = [status for status, _ in results if status == 0]
        if len(wins) != 1:
            failures.append(f"{len(wins)} of 2 trainings succeeded in one run directory")
        for status, err in results:
            if status == 2 and "is writing this training run" not in err and "already has a run" not in err:
                failures.append(f"refused without a clear reason: {err.strip()[:120]}")
            if status not in (0, 2):
                failures.append(f"traceback (exit {status})")
        if wins:
            seed = json.loads((out / "config.json").read_text())["seed"]
            state = json.loads((out / "checkpoints" / "last.json").read_text())["state"]["run"]["seed"]
            if seed != state:
                failures.append(f"mixed run directory: config seed {seed}, checkpoint seed {state}")
        t.outcomes.append(Outcome("concurrency", f"two trainings into one out, try {attempt + 1}", ["train", "x2"],
                                  max(r[0] for r in results), 0.0, "", failures))  # fmt: skip
        print(f"  [{'FAIL' if failures else 'ok':4s}] concurrency  two trainings into one out "
              f"(exits {[r[0] for r in results]})", flush=True)  # fmt: skip


def corruption(t: Trial, f: dict[str, str], mutations: int) -> None:
    """Damaged files, then the command that reads them: an error, or the intact file's output."""
    query = ["query", "--index", t.w("idx"), "--checkpoint", t.w("run/checkpoints/best.safetensors"), "--audio", f["wav"], "-k", "10"]
    _, intact_query, _, _ = avkit(*query)
    build = ["index", "build", "--embeddings", t.w("img-test.safetensors"), "--out", t.w("idx-m"), "--overwrite"]
    info = json.loads((t.work / "idx" / "info.json").read_text())
    targets = {
        "faiss file": (t.work / "idx" / f"index-{info['generation']}.faiss", query, ()),
        "SQLite metadata": (t.work / "idx" / f"meta-{info['generation']}.sqlite", query, ()),
        "index info.json": (t.work / "idx" / "info.json", query, ()),
        "checkpoint": (t.work / "run" / "checkpoints" / "best.safetensors", query, ()),
        "embeddings file": (t.work / "img-test.safetensors", build, ("idx-m",)),
    }
    _, intact_build, _, _ = avkit(*build)
    intact_index = snapshot(t.work / "idx-m")
    names = list(targets)
    for i in range(mutations):
        name = names[i % len(names)]
        path, args, outputs = targets[name]
        good = path.read_bytes()
        path.write_bytes(_mutate(good, t.rng))
        reference = intact_query if args is query else intact_build

        def accepted(status: int, out: str, err: str, ref: str = reference, idx: bool = args is build) -> list[str]:
            if status != 0:
                return []
            same = out == ref and (not idx or snapshot(t.work / "idx-m") == intact_index)
            return [] if same else ["corruption accepted: exit 0 with a different result"]

        t.case("corruption", f"{name}, mutation {i // len(names) + 1}", args, outputs=outputs, check=accepted)
        path.write_bytes(good)
    other = t.work / "idx-other"
    avkit("index", "build", "--embeddings", t.w("img.safetensors"), "--out", str(other))
    faiss_file = targets["faiss file"][0]
    good = faiss_file.read_bytes()
    shutil.copyfile(other / "index-0.faiss", faiss_file)
    t.case("corruption", "faiss file copied in from another index", query, expect="error")
    faiss_file.write_bytes(good)


def kills(t: Trial, f: dict[str, str], count: int) -> None:
    """SIGKILL writers at random moments: the index stays loadable with the old or the new items; a killed
    training resumes to exactly the uninterrupted run's weights."""
    shutil.copytree(t.work / "idx", t.work / "idx-kill")
    before = json.loads((t.work / "idx" / "info.json").read_text())["count"]
    for i in range(count):
        proc = subprocess.Popen([PY, "-m", "avkit", "index", "add", "--index", t.w("idx-kill"), "--embeddings",
                                 t.w("add-a.safetensors"), "--replace"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(t.rng.uniform(1.0, 3.0))  # importing torch takes about 1.3 s: kills land before, during and after
        proc.kill()
        proc.wait()
        status, out, err, _ = avkit("index", "info", t.w("idx-kill"))
        failures = [] if status == 0 else [f"corruption accepted: the index no longer loads after a kill: {err.strip()[:150]}"]
        if status == 0 and json.loads(out)["count"] not in (before, before + 8):
            failures.append(f"lost update: {json.loads(out)['count']} items after a killed add")
        t.outcomes.append(Outcome("kills", f"index add killed, {i + 1}", ["index", "add"], status, 0.0, "", failures))
        print(f"  [{'FAIL' if failures else 'ok':4s}] kills        index add killed, {i + 1}", flush=True)
    cfg = json.loads((t.work / "config.json").read_text())
    reference = json.loads((t.work / "run" / "checkpoints" / "last.json").read_text())["fingerprint"]
    for i in range(max(1, count // 4)):
        out = t.work / f"run-kill-{i}"
        (t.work / f"kill-{i}.json").write_text(json.dumps({**cfg, "out": str(out)}))
        proc = subprocess.Popen([PY, "-m", "avkit", "-q", "train", t.w(f"kill-{i}.json")], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(t.rng.uniform(2.0, 6.0))
        proc.kill()
        proc.wait()
        again = ["train", t.w(f"kill-{i}.json")]
        if (out / "checkpoints" / "last.safetensors").exists():
            again.append("--resume")  # killed after its first checkpoint (or finished: resuming is then a no-op)
        status, _, err, _ = avkit(*again)
        final = json.loads((out / "checkpoints" / "last.json").read_text())["fingerprint"] if status == 0 else err.strip()
        failures = [] if final == reference else [f"corruption accepted: the killed run ends at {final!r}, "
                                                  f"the uninterrupted one at {reference!r}"]  # fmt: skip
        t.outcomes.append(Outcome("kills", f"train killed then resumed, {i + 1}", again, status, 0.0, "", failures))
        print(f"  [{'FAIL' if failures else 'ok':4s}] kills        train killed then resumed, {i + 1}", flush=True)


def bad_parameters_and_files(t: Trial, f: dict[str, str]) -> None:
    m, wav = t.w("digits/manifest.jsonl"), f["wav"]
    for extra in (["--hop", "0"], ["--win", "1024", "--n-fft", "512"], ["--sample-rate", "0"], ["--sample-rate", "-5"],
                  ["--n-mels", "0"], ["--win", "-1"], ["--top-db", "nan"], ["--hop", "abc"]):  # fmt: skip
        t.case("parameters", f"features {' '.join(extra)}", ["features", m, "--out", t.w("f.safetensors"), *extra],
               expect="error")  # fmt: skip
    for out in ("x.wav", "x.xyz", "noext"):
        t.case("parameters", f"plot-audio --out {out}", ["plot-audio", wav, "--out", t.w(out)], expect="error")
    t.case("parameters", "plot-audio --out is the input", ["plot-audio", wav, "--out", wav], expect="error")
    emb = t.w("img.safetensors")
    for extra in (["--nprobe", "4"], ["--factory", "IVF4,Flat", "--nprobe", "0"], ["--factory", "HNSW8", "--nprobe", "4"],
                  ["--factory", "NotAFactory"], ["--factory", "IVF4096,Flat"]):  # fmt: skip
        t.case("parameters", f"index build {' '.join(extra)}", ["index", "build", "--embeddings", emb, "--out",
               t.w("idx-p"), "--overwrite", *extra], expect="error", outputs=("idx-p",))  # fmt: skip
    q = ["query", "--index", t.w("idx"), "--checkpoint", t.w("run"), "--audio", wav]
    for extra in (["--ef-search", "-5"], ["--ef-search", "16"], ["--nprobe", "0"], ["-k", "0"], ["-k", "x"]):
        t.case("parameters", f"query {' '.join(extra)}", [*q, *extra], expect="error")
    t.case("parameters", "query with an image as the audio", [*q[:-1], f["png"]], expect="error")
    t.case("parameters", "query with a missing index", ["query", "--index", t.w("nope"), "--checkpoint", t.w("run"),
           "--audio", wav], expect="error")  # fmt: skip

    # garbled index files (checksums aside: the readers must not crash)
    for name, write in (("binary info.json", lambda p: p.write_bytes(bytes(range(256)))),
                        ("info.json a JSON list", lambda p: p.write_text("[1, 2, 3]")),
                        ("info.json unreadable", lambda p: p.chmod(0)),
                        ("info.json empty", lambda p: p.write_text(""))):  # fmt: skip
        shutil.copytree(t.work / "idx", t.work / "idx-g", dirs_exist_ok=True)
        write(t.work / "idx-g" / "info.json")
        t.case("index files", name, ["index", "info", t.w("idx-g")], expect="error" if os.getuid() else "any",
               outputs=("idx-g",))  # fmt: skip
        (t.work / "idx-g" / "info.json").chmod(0o644)
        shutil.rmtree(t.work / "idx-g")

    # garbled run directories on --resume
    def resume_case(name: str, damage: Callable[[Path], None], expect: str) -> None:
        run = t.work / "run-r"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(t.work / "run", run)
        damage(run)
        cfg = json.loads((t.work / "config.json").read_text())
        (t.work / "config-r.json").write_text(json.dumps({**cfg, "out": str(run)}))
        t.case("resume", name, ["train", t.w("config-r.json"), "--resume"], expect=expect, outputs=("run-r",))

    resume_case("garbled config.json", lambda r: (r / "config.json").write_text("{not json"), "error")
    resume_case("config.json missing", lambda r: (r / "config.json").unlink(), "error")
    resume_case("binary config.json", lambda r: (r / "config.json").write_bytes(b"\xff\xfe\x00"), "error")
    resume_case("garbled best.json", lambda r: (r / "checkpoints" / "best.json").write_text("{"), "ok")
    resume_case("best.json missing", lambda r: (r / "checkpoints" / "best.json").unlink(), "ok")
    resume_case("torn last line of metrics.jsonl", lambda r: (r / "metrics.jsonl").write_text(
        (r / "metrics.jsonl").read_text() + '{"kind": "train", "st'), "ok")  # fmt: skip
    resume_case("checkpoint state is a list", lambda r: _state_list(r / "checkpoints" / "last.safetensors"), "error")
    resume_case("last checkpoint missing", lambda r: (r / "checkpoints" / "last.safetensors").unlink(), "error")
    moved = t.work / "moved" / "run"
    shutil.copytree(t.work / "run", moved)
    cfg = json.loads((t.work / "config.json").read_text())
    (t.work / "config-moved.json").write_text(json.dumps({**cfg, "out": str(moved)}))
    t.case("resume", "a moved run directory", ["train", t.w("config-moved.json"), "--resume"], expect="ok", outputs=("moved",))

    # embeddings and checkpoints from another writer, with valid checksums but wrong contents
    import torch

    from avkit.artifacts import save_artifact

    save_artifact(t.work / "e-noids.safetensors", "embeddings", {"vectors": torch.zeros(2, 16)}, {"labels": [None, None]}, 2)
    t.case("artifacts", "embeddings header without ids", ["index", "build", "--embeddings", t.w("e-noids.safetensors"),
           "--out", t.w("idx-e")], expect="error")  # fmt: skip
    (t.work / "e-json.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\": {\"avkit\": \"{\"}}  ")
    t.case("artifacts", "embeddings with a broken JSON header", ["index", "build", "--embeddings",
           t.w("e-json.safetensors"), "--out", t.w("idx-e")], expect="error")  # fmt: skip
    t.case("artifacts", "a checkpoint that is an embeddings file", ["embed", "--checkpoint", t.w("img.safetensors"),
           "--manifest", m, "--modality", "image", "--out", t.w("e2.safetensors")], expect="error")  # fmt: skip
    t.case("artifacts", "embed --out is the manifest", ["embed", "--checkpoint", t.w("run"), "--manifest", m,
           "--modality", "image", "--out", m], expect="error")  # fmt: skip


def _state_list(path: Path) -> None:
    from safetensors import safe_open

    from avkit.artifacts import HEADER_KEY, save_artifact

    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()[HEADER_KEY])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    header["state"] = [1, 2, 3]
    kind, fmt = header.pop("kind"), header.pop("format")
    save_artifact(path, kind, tensors, header, fmt)


def inputs_a_user_will_have(t: Trial, f: dict[str, str]) -> None:
    rows = json.loads(f["rows"])
    write_manifest(t.work / "bom.jsonl", [{**r, "audio": "digits/" + r["audio"], "image": "digits/" + r["image"]}
                                          for r in rows[:5]], bom=True)  # fmt: skip
    t.case("inputs", "manifest with a UTF-8 BOM", ["data", "check", t.w("bom.jsonl")], expect="ok")
    write_manifest(t.work / "intid.jsonl", [{**rows[0], "id": 5}])
    t.case("inputs", "an integer id", ["data", "check", t.w("intid.jsonl")], expect="problems",
           check=lambda s, o, e: [] if "'id' must be a non-empty string, got 5" in o + e else ["id type not named"])  # fmt: skip
    (t.work / "cut").mkdir(exist_ok=True)
    sf.write(t.work / "cut" / "a.wav", np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    data = (t.work / "cut" / "a.wav").read_bytes()
    (t.work / "cut" / "a.wav").write_bytes(data[: len(data) // 2])
    t.case("inputs", "truncated WAV: a warning naming both counts", ["plot-audio", t.w("cut/a.wav"), "--out", t.w("cut.png")],
           expect="ok", outputs=("cut.png",),
           check=lambda s, o, e: [] if "promises 16,000 frames" in e and "holds 7,9" in e else ["no truncation warning"])  # fmt: skip
    write_manifest(t.work / "cut.jsonl", [{"id": "a", "audio": "cut/a.wav", "image": "digits/" + rows[0]["image"], "label": "0"}])
    t.case("inputs", "truncated WAV, features --strict", ["features", t.w("cut.jsonl"), "--out", t.w("cut.safetensors"),
           "--strict"], expect="error", check=lambda s, o, e: [] if "is truncated" in e else ["not refused as truncated"])  # fmt: skip
    t.case("inputs", "truncated WAV, data check", ["data", "check", t.w("cut.jsonl")], expect="problems",
           check=lambda s, o, e: [] if "is truncated" in o + e else ["truncation not reported"])  # fmt: skip
    (t.work / "png-as.wav").write_bytes(Path(f["png"]).read_bytes())
    t.case("inputs", "a PNG named .wav", ["plot-audio", t.w("png-as.wav"), "--out", t.w("x.png")], expect="error",
           check=lambda s, o, e: [] if "found a PNG image" in e else ["message does not say what the file is"])  # fmt: skip
    hour = t.work / "hour.wav"
    with sf.SoundFile(str(hour), "w", 16000, 1, "PCM_16") as handle:
        for _ in range(60):
            handle.write((0.1 * np.random.default_rng(0).standard_normal(16000 * 60)).astype(np.float32))
    start = time.perf_counter()
    o = t.case("inputs", "plot-audio on a one-hour WAV (115 MB)", ["plot-audio", str(hour), "--out", t.w("hour.png")],
               expect="ok", outputs=("hour.png",))  # fmt: skip
    if time.perf_counter() - start > 10:
        o.failures.append(f"took {time.perf_counter() - start:.1f} s (> 10 s)")
    hour.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "hardening-trial", help="work folder (emptied first)")
    p.add_argument("--mutations", type=int, default=60, help="damaged-file cases (default 60)")
    p.add_argument("--kills", type=int, default=12, help="writers killed with SIGKILL (default 12; a quarter are trainings)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.umask(0o022)
    work = args.out.resolve() / "work"
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.rmtree(work.parent / f"{work.name}-outside", ignore_errors=True)
    work.mkdir(parents=True)
    t = Trial(work, args.seed)
    started = time.perf_counter()
    files = setup(t)
    paths_and_places(t, files)
    concurrency(t, files)
    corruption(t, files, args.mutations)
    kills(t, files, args.kills)
    bad_parameters_and_files(t, files)
    inputs_a_user_will_have(t, files)
    groups: dict[str, list[Outcome]] = {}
    for o in t.outcomes:
        groups.setdefault(o.group, []).append(o)
    kinds = ("traceback", "write outside", "lost update", "corruption accepted")
    print(f"\nhardening trial: {len(t.outcomes)} cases in {time.perf_counter() - started:.0f} s\n")
    print("| group | cases | " + " | ".join(kinds) + " | other failures |")
    print("| --- | ---: |" + " ---: |" * (len(kinds) + 1))
    totals = dict.fromkeys((*kinds, "other"), 0)
    for group, outs in groups.items():
        counts = {k: sum(any(k in fail for fail in o.failures) for o in outs) for k in kinds}
        other = sum(1 for o in outs if o.failures and not any(k in fail for fail in o.failures for k in kinds))
        for k in kinds:
            totals[k] += counts[k]
        totals["other"] += other
        print(f"| {group} | {len(outs)} | " + " | ".join(str(counts[k]) for k in kinds) + f" | {other} |")
    print("| **all** | " + f"{len(t.outcomes)} | " + " | ".join(str(totals[k]) for k in kinds) + f" | {totals['other']} |")
    failing = [o for o in t.outcomes if o.failures]
    for o in failing:
        print(f"\nFAILED {o.group}: {o.name}\n  avkit {' '.join(o.argv)}\n  " + "\n  ".join(o.failures))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    report = {"seed": args.seed, "commit": commit, "mutations": args.mutations,
              "cases": [asdict(o) for o in t.outcomes], "failing": len(failing)}  # fmt: skip
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nreport: {args.out / 'report.json'}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
