"""CLI commands for training, embedding, indexing and querying (part of ``avkit``'s CLI).

Modality options (``--audio FILE``, ``--image FILE``, ...) come from the
modality registry, so a newly registered modality gets its own option.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from avkit.errors import ArtifactError, ConfigError
from avkit.fileio import folder_lock, refuse_overwriting

TRAIN_EPILOG = """\
examples:
  avkit train experiments/configs/contrastive.toml
  avkit train experiments/configs/contrastive.toml --set optim.epochs=3 --set out=runs/quick
  avkit train experiments/configs/contrastive.toml --set model.towers.image.preprocess.size=64
  avkit train experiments/configs/contrastive.toml --set augment.audio.gain_db=[-6,6]
  avkit train experiments/configs/contrastive.toml --resume      # continue after a crash or kill
  torchrun --nproc_per_node 2 -m avkit train CONFIG              # data-parallel (gloo on CPU)

a config has two parts: [model] (towers, heads: the architecture, saved with every
checkpoint; often a file of its own, model = "models/NAME.toml") and the run settings
([data], [optim], [augment.TOWER], [loss_weights.HEAD], out, seed). See docs/architecture.md.

the run directory (the config's 'out') gets config.json, environment.json, metrics.jsonl,
plots/curves.png, checkpoints/{best,last}.safetensors (+ .json) and summary.json.
"""

QUERY_EPILOG = """\
a session:
  avkit embed --checkpoint runs/contrastive --manifest data/digits/manifest.jsonl --modality image --split test --out emb.safetensors
  avkit index build --embeddings emb.safetensors --out runs/image-index
  avkit query --index runs/image-index --checkpoint runs/contrastive --audio data/digits/audio/7-en-f2-t0.wav -k 5 --gallery q.png
"""


def float_type(accept: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: a number that ``accept`` takes (text that is no number reads as NaN, which no bound
    takes); anything else is refused as ``"<expected>, got '<text>'"``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


recall_fraction = float_type(lambda v: 0 < v <= 1, "a recall in (0, 1]")
positive_float = float_type(lambda v: v > 0, "a positive number")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive integer, got {text!r}")
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    from avkit.train import load_run_config, train

    cfg = load_run_config(args.config, args.set)
    result = train(cfg, resume=args.resume, show_progress=True)
    print(f"trained {list(cfg.model.heads)} for {result.steps} steps in {result.seconds:.0f} s; run directory {result.run_dir}")
    print(f"best score {result.best_score:.4f} (model fingerprint {result.fingerprint})")
    for key, value in result.best_metrics.items():
        print(f"  {key:44s} {value:.4f}")
    return 0


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun's RANK and WORLD_SIZE (0, 1 without)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    except ValueError:
        raise ConfigError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
                          "must be integers (torchrun sets them)") from None  # fmt: skip
    if world > 1 and "RANK" not in os.environ:
        raise ConfigError(f"WORLD_SIZE={world} but no RANK: every process would write the same file; run under torchrun")
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is not one of the {world} processes of WORLD_SIZE")
    return rank, world


def _cmd_embed(args: argparse.Namespace) -> int:
    from avkit.data.manifest import read_manifest
    from avkit.models import load_model, resolve_checkpoint
    from avkit.retrieval import embed_manifest, save_embeddings

    path = resolve_checkpoint(args.checkpoint)
    model = load_model(path)
    manifest = read_manifest(args.manifest, modalities=[args.modality])
    rank, world = _rank_and_world()
    out = args.out if world == 1 else args.out.with_name(f"{args.out.stem}.rank{rank}-of-{world}{args.out.suffix}")
    refuse_overwriting(out, [manifest.path, path, *(manifest.resolve(r, args.modality) for r in manifest.records)])
    if not manifest.shard(rank, world, args.split).records:
        raise ConfigError(f"process {rank} of {world} has no records of split {args.split!r} to embed; use fewer processes")
    emb, skipped = embed_manifest(model, manifest, args.modality, args.split, args.batch_size, args.strict,
                                  show_progress=rank == 0, checkpoint=str(path), shard=(rank, world))  # fmt: skip
    save_embeddings(out, emb)
    print(f"wrote {len(emb.ids)} {args.modality} embeddings of dim {emb.dim} to {out} (model {emb.fingerprint})")
    for rid, reason in skipped:
        print(f"  skipped {rid}: {reason}")
    return 0


def _search_params(args: argparse.Namespace) -> dict[str, float]:
    params: dict[str, float] = {}
    if args.nprobe is not None:
        params["nprobe"] = args.nprobe
    if args.probe_margin is not None:
        params["probe_margin"] = args.probe_margin
    if args.ef_search is not None:
        params["efSearch"] = args.ef_search
    return params


def _cmd_index_build(args: argparse.Namespace) -> int:
    from avkit.retrieval import build_index, load_embeddings
    from avkit.retrieval.tuning import tune_search

    if args.target_recall is not None and _search_params(args):
        raise ConfigError("--target-recall chooses the search setting itself; drop --nprobe / --probe-margin / --ef-search")
    if args.probe_margin is not None and args.nprobe is None:
        raise ConfigError("--probe-margin needs --nprobe, the most lists a query may probe (e.g. a quarter of the "
                          "lists); or let --target-recall choose both")  # fmt: skip
    if args.on_disk and args.target_recall is not None:
        raise ConfigError("--target-recall needs every vector in memory; with --on-disk, choose --nprobe (tune it on "
                          "an in-memory index of a sample: docs/data.md)")  # fmt: skip

    out = Path(args.out)
    refuse_overwriting(out, args.embeddings)
    if out.exists() and not out.is_dir():
        raise ArtifactError(out, "is a file, not an index directory; choose a folder for the index")
    if out.is_dir() and not (out / "info.json").exists() and any(out.iterdir()) and not args.overwrite:
        raise ArtifactError(out, "is a folder with other files, not an avkit index; choose an empty or new folder, "
                            "or pass --overwrite to write the index among them (they are left alone)")  # fmt: skip
    with folder_lock(args.out, "index"):
        if (out / "info.json").exists() and not args.overwrite:
            raise ArtifactError(args.out, "an index already exists here; pass --overwrite to replace it, or use 'index add'")
        if args.on_disk:
            from avkit.retrieval.ondisk import build_ondisk_index

            index = build_ondisk_index(args.embeddings, out, args.factory, args.train_size, _search_params(args),
                                       show_progress=True)  # fmt: skip
        else:
            embeddings = [load_embeddings(p) for p in args.embeddings]
            index = build_index(embeddings, args.factory, _search_params(args))
        if args.target_recall is not None:
            import numpy as np

            point = tune_search(index, np.concatenate([e.vectors.numpy() for e in embeddings]), args.target_recall,
                                sample=args.tune_queries)  # fmt: skip
        index.save(args.out)
    where = f" (inverted lists on disk: {index.data_file.name})" if index.data_file is not None else ""
    print(f"indexed {len(index)} {index.modality} vectors (dim {index.dim}, {args.factory}, cosine) in {args.out}{where}")
    if args.target_recall is not None:
        print(f"search setting {point.params or '(the defaults)'}: recall@{point.k} {point.recall:.3f} on {point.sample} "
              f"indexed vectors as queries (each left out of its own results), {point.ms_per_query:.3f} ms per "
              f"query one at a time (target {args.target_recall})")  # fmt: skip
    return 0


def _cmd_index_add(args: argparse.Namespace) -> int:
    from avkit.retrieval import RetrievalIndex, add_embeddings, load_embeddings

    emb = load_embeddings(args.embeddings)
    if not Path(args.index).is_dir():
        raise ArtifactError(args.index, "no index here; build one first with 'avkit index build'")
    with folder_lock(args.index, "index"):  # held from load to save: two adds cannot both start from the same items
        index = RetrievalIndex.load(args.index, expect_dim=emb.dim)
        before = len(index)
        add_embeddings(index, emb, replace=args.replace)
        index.save(args.index)
    print(f"added {len(emb.ids)} vectors to {args.index}: {before} -> {len(index)} items")
    return 0


def _cmd_index_info(args: argparse.Namespace) -> int:
    from avkit.retrieval import RetrievalIndex

    index = RetrievalIndex.load(args.index)
    if args.verify:
        index.verify_data()  # the whole on-disk data file (loading hashed only its ends)
    print(json.dumps({**index.info(), "path": str(args.index)}, indent=2))
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from avkit.modalities import list_modalities
    from avkit.models import load_model, resolve_checkpoint
    from avkit.plotting import check_picture_path
    from avkit.retrieval import open_index, search_files

    given = [(m, getattr(args, m)) for m in list_modalities() if getattr(args, m, None) is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one query file, as one of {['--' + m for m in list_modalities()]}")
    modality, path = given[0]
    if args.gallery:
        check_picture_path(args.gallery, "--gallery")
        refuse_overwriting(args.gallery, [path, args.checkpoint], "--gallery")
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_model(checkpoint)
    if modality not in model.embedding_modalities():
        raise ConfigError(f"the model in {checkpoint} embeds {model.embedding_modalities()}, not {modality}")
    index = open_index(args.index, model)
    index.set_search_params(_search_params(args))
    hits = search_files(model, index, modality, [path], args.k)[0]
    if not hits:
        print(f"the index {args.index} is empty")
        return 0
    print(f"query {modality} {path} -> {len(hits)} nearest {index.modality} items of {len(index)}:")
    print(f"{'rank':>4}  {'score':>7}  {'id':24s} {'label':6s} path")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>4}  {hit.score:7.4f}  {hit.key:24s} {hit.metadata.get('label')!s:6s} {hit.metadata.get('path', '')}")
    if len(hits) < min(args.k, len(index)):
        print(f"(asked for {args.k}; this approximate search found only {len(hits)} of the index's {len(index)} "
              "items: raise --nprobe, --probe-margin or --ef-search)")  # fmt: skip
    elif args.k > len(hits):
        print(f"(asked for {args.k}; the index holds only {len(hits)})")
    if args.gallery:
        from avkit.retrieval.gallery import plot_gallery

        refuse_overwriting(args.gallery, [h.metadata.get("path") for h in hits if h.metadata.get("path")], "--gallery")
        plot_gallery(modality, path, index.modality, hits, args.gallery, query_label=args.label)
        print(f"gallery: {args.gallery}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from avkit.losses import PAIR_LOSSES
    from avkit.modalities import get_modality, list_modalities
    from avkit.models import list_encoders, list_heads
    from avkit.models.decoders import IMAGE_DECODERS
    from avkit.models.projections import PROJECTIONS

    print("modalities:")
    for name in list_modalities():
        mod = get_modality(name)
        settings = ", ".join(f"{k}={v}" for k, v in mod.default_settings().items()) or "no settings"
        print(f"  {name:10s} encoders {list(mod.encoders)}; preprocess: {settings}")
    print(f"encoders:    {list_encoders()}")
    print(f"heads:       {list_heads()}")
    print(f"projections: {PROJECTIONS.names()}")
    print(f"pair losses: {PAIR_LOSSES.names()}")
    print(f"image decoders: {IMAGE_DECODERS.names()}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register train, embed, index, query and list on the top-level parser."""
    from avkit.modalities import list_modalities

    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train", help="train a model (towers + heads) from a config",
                       description="Train the model a config describes (towers feeding heads such as contrastive, "
                       "classify, distill); record config, seed, commit, metrics, plots and checkpoints in its "
                       "run directory.", epilog=TRAIN_EPILOG, formatter_class=raw)  # fmt: skip
    p.add_argument("config", type=Path, help="TOML or JSON config (see experiments/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set optim.epochs=5 (repeatable)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in the config's 'out' from its last checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("embed", help="embed one modality of a manifest with a trained model",
                       description="Embed every item of one modality (optionally one split) into an "
                       "embeddings file, batched. Under torchrun (torchrun --nproc_per_node N -m avkit embed ...), "
                       "process R of N embeds every N-th record from R and writes OUT's name with .rankR-of-N "
                       "before the suffix; 'avkit index build --embeddings' takes them all.",
                       epilog=QUERY_EPILOG, formatter_class=raw)  # fmt: skip
    p.add_argument("--checkpoint", required=True, type=Path, help="run directory (uses its best checkpoint) or .safetensors")
    p.add_argument("--manifest", required=True, type=Path, help="manifest.jsonl")
    p.add_argument("--modality", required=True, choices=list_modalities(), help="which files to embed")
    p.add_argument("--split", default=None, help="only this split (default: every record)")
    p.add_argument("--out", required=True, type=Path, help="output embeddings .safetensors")
    p.add_argument("--batch-size", type=positive_int, default=256, help="items per forward pass (default 256)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable file instead of skipping it")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("index", help="build, extend or inspect a retrieval index",
                       description="Persistent faiss indexes with string ids and metadata.", epilog=QUERY_EPILOG,
                       formatter_class=raw)  # fmt: skip
    isub = p.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    b = isub.add_parser("build", help="a new index from an embeddings file")
    b.add_argument("--embeddings", required=True, type=Path, nargs="+", help="one or more files from avkit embed (same model)")
    b.add_argument("--out", required=True, type=Path, help="index directory")
    b.add_argument("--factory", default="Flat",
                   help="faiss index_factory string: Flat (exact), HNSW32, IVF{k},Flat, IVF{k},PQ{m} (default Flat)")  # fmt: skip
    b.add_argument("--nprobe", type=positive_int, help="IVF: lists probed per search")
    b.add_argument("--probe-margin", type=positive_float, metavar="M",
                   help="IVF: probe only the lists whose centroid scores within M of the query's best list "
                   "(cosine similarity), at most --nprobe of them; --target-recall tries margins itself")  # fmt: skip
    b.add_argument("--ef-search", type=positive_int, help="HNSW: search breadth (efSearch)")
    b.add_argument("--target-recall", type=recall_fraction, metavar="R",
                   help="measure every search setting of the index on a sample of its vectors (each left out of "
                   "its own results) and keep the fastest "
                   "whose recall@10 reaches R (e.g. 0.95); recorded in the index (see 'index info')")  # fmt: skip
    b.add_argument("--tune-queries", type=positive_int, default=1000,
                   help="sample size for --target-recall (default 1000)")
    b.add_argument("--on-disk", action="store_true",
                   help="IVF only: keep the inverted lists in a file that searches memory-map (an index larger than "
                   "RAM); trained on --train-size vectors, filled one embeddings file at a time; read-only once built")  # fmt: skip
    b.add_argument("--train-size", type=positive_int, default=100_000,
                   help="with --on-disk: vectors sampled across the files to train on (default 100000)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index at --out")
    b.set_defaults(func=_cmd_index_build)
    a = isub.add_parser("add", help="add an embeddings file to an existing index")
    a.add_argument("--index", required=True, type=Path, help="index directory")
    a.add_argument("--embeddings", required=True, type=Path, help="from avkit embed (same model)")
    a.add_argument("--replace", action="store_true", help="overwrite ids already in the index (default: refuse)")
    a.set_defaults(func=_cmd_index_add)
    i = isub.add_parser("info", help="print an index's dimension, metric, model fingerprint and size")
    i.add_argument("index", type=Path, help="index directory")
    i.add_argument("--verify", action="store_true",
                   help="also hash an on-disk index's whole data file (a load checks its size and ends only)")
    i.set_defaults(func=_cmd_index_info)

    p = sub.add_parser("query", help="find the nearest indexed items to a file (any modality)",
                       description="Embed one query file with a trained model and print the k nearest "
                       "items of an index built with the same model.", epilog=QUERY_EPILOG, formatter_class=raw)  # fmt: skip
    p.add_argument("--index", required=True, type=Path, help="index directory")
    p.add_argument("--checkpoint", required=True, type=Path, help="the run that made the index's embeddings")
    for name in list_modalities():
        p.add_argument(f"--{name}", type=Path, metavar="FILE", help=f"query with this {name} file")
    p.add_argument("-k", type=positive_int, default=5, help="results to return (default 5)")
    p.add_argument("--nprobe", type=positive_int, help="IVF: lists probed, instead of the index's own setting")
    p.add_argument("--probe-margin", type=positive_float, metavar="M",
                   help="IVF: probe the lists within M of the best one (at most nprobe), instead of the index's own setting")  # fmt: skip
    p.add_argument("--ef-search", type=positive_int, help="HNSW: search breadth, instead of the index's own setting")
    p.add_argument("--label", help="the query's label, to colour the gallery (green: same label)")
    p.add_argument("--gallery", type=Path, help="save a picture of the query and its results here")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("list", help="list registered modalities, encoders, heads, projections and losses")
    p.set_defaults(func=_cmd_list)
