"""Data paths at scale: items/s and peak memory of the in-memory, lazy and shard-stream paths; video decoding.

    python benchmarks/data.py [--sizes 20000 100000] [--repeats 3] [--steps 40] [--work runs/bench-data]

Data: manifests of 20,000 and 100,000 items made by repeating AV-digits' training pairs
(``data/digits``, built if missing), and their WebDataset shards (``avkit data shard``,
media content, 1,000 items each); all written once under ``--work`` and reused.

Each (size, path) runs in a fresh process, so that its memory is its own:

- **in-memory**: ``ManifestDataset(in_memory=True)``, every item decoded up front, no workers
  (what ``make demo`` does on 2,560 items);
- **lazy**: ``ManifestDataset`` decoding items as they are asked for, 2 DataLoader workers;
- **shards**: ``ShardStream`` over the tars, 2 DataLoader workers, the default shuffle buffer
  (``data.shuffle_buffer``, 256 items; the items were mixed when the shards were written).

In each process: set-up (decoding everything, for in-memory), then ``--steps`` batches of 64
delivered as fast as the loader gives them (after 5 warm-up batches), then ``--steps`` training
steps of the demo model (``experiments/configs/contrastive.toml``: its towers, head, optimiser
and ``channels_last``), fed by a fresh loader. The parent samples the memory of the process and
all its children every 0.5 s, apart for the two phases: the sum of their RSS (pages shared
between a parent and its forked workers count once per process, so this over-counts) and the
sum of their PSS (shared pages split among their sharers: the memory the tree really holds).
The configurations take turns, ``--repeats`` rounds, and every number is the median (min-max)
over the rounds.

Training speed is compared side by side in one process per size, which holds all three
sources: blocks of ``--steps`` steps from each path in turn, ``--repeats`` rounds, each ratio
taken against the in-memory block of its own round (separate processes minutes apart were
thrown off by the machine's slow spells: the same path moved by 25% between rounds).

Video: frames and clips read from MP4 lines (``{"video", "t"}``, seek and decode) against the
same lines extracted to PNG + WAV (``avkit data from-videos --extract``), items/s in one process.

Targets (issue 10): the shard stream's peak RSS under 1.5 GB at both sizes (here: its process
tree's, delivering; the training phase's is reported beside it), and at least 80% of the
in-memory path's items/s while training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "contrastive.toml"
PATHS = ("in-memory", "lazy", "shards")
BATCH = 64


# -- data ------------------------------------------------------------------------------------------
def repeated_manifest(source: Path, out: Path, size: int) -> Path:
    """``size`` training items, repeating ``source``'s training pairs (absolute paths, unique ids)."""
    if out.is_file() and sum(1 for _ in out.open()) == size:
        return out
    from avkit.data.manifest import Record, read_manifest, write_manifest

    man = read_manifest(source)
    train = man.split("train")
    records = []
    for n in range(size):
        rec = train[n % len(train)]
        records.append(Record(id=f"r{n // len(train)}-{rec.id}", label=rec.label, split="train",
                              paths={m: str(man.resolve(rec, m)) for m in ("audio", "image")}))  # fmt: skip
    write_manifest(out, records)
    return out


def shards_for(manifest: Path, out: Path, size: int) -> Path:
    info = out / "shards.json"
    if info.is_file() and json.loads(info.read_text())["items"] == size and "shuffle_seed" in json.loads(info.read_text()):
        return out
    if out.exists():
        import shutil

        shutil.rmtree(out)
    from avkit.data.shards import write_shards
    from avkit.modalities import get_modality

    pipes = {m: get_modality(m).make_pipeline() for m in ("audio", "image")}
    summary = write_shards(manifest, out, pipes, split="train", shard_size=1000, show_progress=True)
    print(f"  wrote {summary['items']} items in {summary['shards']} shards ({summary['bytes'] / 1e9:.2f} GB) "
          f"in {summary['seconds']:.0f} s", flush=True)  # fmt: skip
    return out


# -- measured processes ----------------------------------------------------------------------------
def _demo_model(manifest: Path) -> tuple:
    """The demo run's config, its model, and the model's training pipelines."""
    from avkit.models import create_model
    from avkit.train import load_run_config, with_labels

    cfg = with_labels(load_run_config(CONFIG, [f"data.manifest={manifest}"]))
    model = create_model(cfg.model)
    return cfg, model, model.pipelines(cfg.augment, train=True)


def _source(path: str, manifest: Path, shards: Path, cfg, pipes):
    """``epoch -> loader`` of batches of 64 for one path."""
    from avkit.data.dataset import ManifestDataset, make_loader
    from avkit.data.shards import ShardSet, ShardStream
    from avkit.train.distributed import DistInfo, epoch_batches

    if path == "shards":
        stream = ShardStream(ShardSet.load(shards), pipes, BATCH, seed=0, label_names=cfg.model.labels,
                             shuffle_buffer=cfg.data.shuffle_buffer)  # fmt: skip
        return lambda epoch: stream.loader(epoch, 0, workers=2)
    ds = ManifestDataset(manifest, pipes, split="train", label_names=cfg.model.labels, train=True,
                         in_memory=path == "in-memory")  # fmt: skip

    def loader(epoch: int):
        keys = [[(int(i), epoch) for i in b] for b in epoch_batches(len(ds), BATCH, 0, epoch, DistInfo())]
        return make_loader(ds, keys, 0 if path == "in-memory" else 2)

    return loader


def _trainer(cfg, model):
    """One training step of the demo model, as the engine takes it (optimiser, ``channels_last``)."""
    import torch

    from avkit.train.optim import build_optimizer

    opt = build_optimizer(model, cfg.optim.lr, cfg.optim.weight_decay)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()

    def train_step(batch) -> None:
        if cfg.channels_last:
            batch.inputs = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                            for k, v in batch.inputs.items()}  # fmt: skip
        loss = sum(model(batch, {}).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return train_step


def _rate(batches, steps: int, step=None) -> float:
    """Items/s over ``steps`` batches (each trained on, with ``step``), after 5 warm-up batches."""
    it = iter(batches)
    for _ in range(5):  # workers start, buffers fill
        batch = next(it)
        if step:
            step(batch)
    items, tick = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        if step:
            step(batch)
        items += len(batch)
    return items / (time.perf_counter() - tick)


def child(path: str, manifest: Path, shards: Path, steps: int, phase_file: Path) -> dict:
    """Set up ``path``'s loader, deliver ``steps`` batches, then train ``steps`` steps; report rates."""
    cfg, model, pipes = _demo_model(manifest)
    started = time.perf_counter()
    loader = _source(path, manifest, shards, cfg, pipes)
    setup = time.perf_counter() - started
    delivered = _rate(loader(0), steps)
    phase_file.write_text("train")  # the parent's memory samples from here on are the training phase's
    trained = _rate(loader(1), steps, _trainer(cfg, model))
    return {"setup_s": setup, "delivered": delivered, "trained": trained}


def paired(manifest: Path, shards: Path, steps: int, rounds: int) -> dict:
    """Training items/s from each path, side by side in one process: blocks of ``steps`` steps from
    each path in turn, ``rounds`` times, so that the machine's slow spells hit them alike."""
    cfg, model, pipes = _demo_model(manifest)
    loaders = {path: _source(path, manifest, shards, cfg, pipes) for path in PATHS}
    train_step = _trainer(cfg, model)
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    for r in range(rounds):
        for path in PATHS:
            rates[path].append(_rate(loaders[path](r), steps, train_step))
    return rates


def tree_memory(pid: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over ``pid`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    rss = pss = 0
    for p in tree:
        try:
            with open(f"/proc/{p}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def measure(path: str, manifest: Path, shards: Path, steps: int) -> dict:
    """One child process; its tree's peak memory while setting up and delivering, and while training."""
    phase_file = manifest.parent / f".phase-{os.getpid()}"
    phase_file.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", path, "--manifest", str(manifest), "--shards", str(shards),
           "--steps", str(steps), "--phase-file", str(phase_file)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    peak = {"deliver": [0, 0], "train": [0, 0]}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            phase = "train" if phase_file.exists() else "deliver"
            rss, pss = tree_memory(proc.pid)
            peak[phase][0], peak[phase][1] = max(peak[phase][0], rss), max(peak[phase][1], pss)
            time.sleep(0.5)  # reading smaps_rollup of a large process costs CPU: every 0.1 s took 30% of a core

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    phase_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"{path} on {manifest} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "rss": peak["deliver"][0], "pss": peak["deliver"][1],
            "train_rss": peak["train"][0], "train_pss": peak["train"][1]}


# -- video -----------------------------------------------------------------------------------------
def video_rates(work: Path, digits: Path, videos: int, repeats: int) -> dict[str, list[float]]:
    """Items (frame + clip) per second from MP4 lines and from the same lines extracted to files."""
    from avkit.data.manifest import read_manifest
    from avkit.data.videos import VideosConfig, build_from_videos, videos_from_pairs
    from avkit.modalities import get_modality

    clips = work / f"videos-{videos}"
    if not (clips / "labels.csv").is_file():
        videos_from_pairs(digits / "manifest.jsonl", clips, limit=videos)
    lines = work / f"video-lines-{videos}"
    files = work / f"video-files-{videos}"
    for out, extract in ((lines, False), (files, True)):
        if not (out / "manifest.jsonl").is_file():
            build_from_videos(clips, out, VideosConfig(every=1.0, label_from=str(clips / "labels.csv"), extract=extract))
    pipes = [get_modality(m).make_pipeline() for m in ("audio", "image")]
    rates: dict[str, list[float]] = {"mp4 (seek + decode)": [], "extracted PNG + WAV": []}
    for _ in range(repeats):
        for name, folder in zip(rates, (lines, files)):
            man = read_manifest(folder / "manifest.jsonl")
            tick = time.perf_counter()
            for rec in man.records:
                for pipe in pipes:
                    man.load(rec, pipe)
            rates[name].append(len(man) / (time.perf_counter() - tick))
    return rates


# -- report ----------------------------------------------------------------------------------------
def stat(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="batches of 64 per measurement (default 40)")
    parser.add_argument("--videos", type=int, default=200, help="MP4 files for the video rows (default 200)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-data")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits")
    parser.add_argument("--child", choices=[*PATHS, "paired"], help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import logging

        logging.basicConfig(level=logging.ERROR)
        if args.child == "paired":
            print(json.dumps(paired(args.manifest, args.shards, args.steps, args.repeats)))
        else:
            print(json.dumps(child(args.child, args.manifest, args.shards, args.steps, args.phase_file)))
        return

    if not (args.data / "manifest.jsonl").is_file():
        from avkit.data.digits import build_digits

        build_digits(args.data)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# data paths: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.repeats} rounds, median (min–max)\n", flush=True)  # fmt: skip
    results: dict[tuple[int, str], list[dict]] = {}
    prepared = {}
    for size in args.sizes:
        manifest = repeated_manifest(args.data / "manifest.jsonl", args.work / f"manifest-{size}.jsonl", size)
        prepared[size] = (manifest, shards_for(manifest, args.work / f"shards-{size}", size))
    for round_ in range(args.repeats):
        for size in args.sizes:
            for path in PATHS:
                r = measure(path, *prepared[size], args.steps)
                results.setdefault((size, path), []).append(r)
                print(f"  round {round_ + 1}: {size:,} {path}: set-up {r['setup_s']:.1f} s, delivered "
                      f"{r['delivered']:,.0f}/s (RSS {r['rss'] / 1e9:.2f} GB, PSS {r['pss'] / 1e9:.2f}), training "
                      f"{r['trained']:,.0f}/s (RSS {r['train_rss'] / 1e9:.2f} GB, PSS {r['train_pss'] / 1e9:.2f})", flush=True)  # fmt: skip

    print("\nEach path in a process of its own. Peak memory of the process tree: RSS summed over the processes "
          "(pages shared with forked workers counted in each) / PSS summed (shared pages split: what the tree "
          "holds).\n")
    print("| items | path | set-up s | delivered items/s | peak GB delivering, RSS / PSS | peak GB training, RSS / PSS |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    verdicts = []
    for size in args.sizes:
        for path in PATHS:
            rows = results[(size, path)]

            def gb(key: str, rows: list[dict] = rows) -> str:
                return stat([r[key] / 1e9 for r in rows], "{:.2f}")

            print(f"| {size:,} | {path} | {stat([r['setup_s'] for r in rows], '{:.1f}')} | {stat([r['delivered'] for r in rows])} | "
                  f"{gb('rss')} / {gb('pss')} | {gb('train_rss')} / {gb('train_pss')} |")  # fmt: skip
            if path == "shards":
                verdicts.append((f"{size:,}: shard stream's peak RSS (summed) < 1.5 GB while delivering, every round",
                                 max(r["rss"] for r in rows) < 1.5e9))  # fmt: skip

    print(f"\nTraining the demo model, the three paths side by side in one process ({args.steps} steps of {BATCH} "
          f"per block, blocks in turn, {args.repeats} rounds):\n")
    print("| items | path | training items/s | vs in-memory, same round |")
    print("| ---: | --- | ---: | ---: |")
    for size in args.sizes:
        manifest, shards = prepared[size]
        res = subprocess.run([sys.executable, __file__, "--child", "paired", "--manifest", str(manifest), "--shards",
                              str(shards), "--steps", str(args.steps), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        if res.returncode != 0:
            raise SystemExit(f"side-by-side training on {manifest} failed:\n{res.stderr[-3000:]}")
        rates = json.loads(res.stdout.strip().splitlines()[-1])
        for path in PATHS:
            ratios = [a / b for a, b in zip(rates[path], rates["in-memory"])]
            print(f"| {size:,} | {path} | {stat(rates[path])} | {stat(ratios, '{:.2f}')} |", flush=True)
            if path == "shards":
                verdicts.append((f"{size:,}: shard stream >= 0.80 x in-memory items/s while training, every round",
                                 min(ratios) >= 0.80))  # fmt: skip

    rates = video_rates(args.work, args.data, args.videos, args.repeats)
    print(f"\n| video lines ({args.videos} MP4 files, a line per second) | items/s (frame + 1 s clip) |")
    print("| --- | ---: |")
    for name, values in rates.items():
        print(f"| {name} | {stat(values)} |")
    print()
    for what, ok in verdicts:
        print(f"{'met' if ok else 'NOT met'}: {what}")


if __name__ == "__main__":
    main()
