"""The main job: AV-digits end to end on the embedded data, with a report.

    python experiments/demo.py --out runs/demo [--config experiments/configs/demo.toml] [--set digits.size=small]

Steps: build AV-digits (speech + handwritten digits) -> check it -> build
localization scenes -> check them -> cache log-mel features -> plots ->
train a quick contrastive audio<->image model -> index the test split both
ways -> example queries with galleries -> a quick localization model on the
scenes, scored on their test split -> quick translation models, one example each
way (speech -> image, image -> speech) -> ``runs/demo/report.md``. The resolved config, seed and environment are
written to ``runs/demo/config.json``. A dataset already built with the same
config is reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from avkit.audio.io import load_audio  # noqa: E402
from avkit.audio.plot import plot_three_views, save_figure  # noqa: E402
from avkit.config import load_config, to_dict  # noqa: E402
from avkit.data.check import CheckReport, check_manifest  # noqa: E402
from avkit.data.dataset import ManifestDataset, ordered_loader  # noqa: E402
from avkit.data.digits import DigitsConfig, build_digits  # noqa: E402
from avkit.data.features import FeatureCache, compute_features  # noqa: E402
from avkit.data.manifest import Manifest, read_manifest  # noqa: E402
from avkit.data.scenes import ScenesConfig, build_scenes  # noqa: E402
from avkit.errors import AvkitError  # noqa: E402
from avkit.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from avkit.localization import evaluate_localization, save_best_and_worst  # noqa: E402
from avkit.modalities import AudioSettings, get_modality  # noqa: E402
from avkit.models import load_model  # noqa: E402
from avkit.provenance import environment_info  # noqa: E402
from avkit.retrieval import build_index, embed_manifest, open_index, search_files  # noqa: E402
from avkit.retrieval.gallery import plot_gallery  # noqa: E402
from avkit.train import RunResult, load_run_config, train_or_reuse  # noqa: E402
from avkit.translation import (  # noqa: E402
    encode_manifest,
    fit_units,
    has_spoken_units,
    image_to_speech_files,
    reusable_units,
    save_speech,
    speech_to_image_files,
)
from avkit.translation.plots import save_attention, shown_image  # noqa: E402
from avkit.vision.io import load_image  # noqa: E402

log = logging.getLogger("demo")
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "demo.toml"


@dataclass
class MatchingConfig:
    """The quick matching model: a contrastive config, trained briefly; queries against test-split indexes."""

    config: str = str(Path(__file__).parent / "configs" / "contrastive.toml")
    epochs: int = 6
    k: int = 5
    queries: int = 2  # per direction


@dataclass
class LocalizationDemoConfig:
    """The quick localization model: scenes, the matching run's audio tower (frozen) and image encoder, a few epochs."""

    config: str = str(Path(__file__).parent / "configs" / "localization.toml")
    epochs: int = 6
    cases: int = 4  # best and worst test scenes drawn


@dataclass
class TranslationDemoConfig:
    """Quick translation models (the deconv decoder; units of the voice encoder's map; a unit vocoder),
    one example each way. The full recipe, with the diffusion decoder and judges, is experiments/translation.py."""

    configs: str = str(Path(__file__).parent / "configs")
    classifier_epochs: int = 4
    decoder_epochs: int = 6
    voice_epochs: int = 6
    units: int = 50  # k
    vocoder_epochs: int = 5
    vocoder_frames: str = "mel"  # experiments/translation.py measures mel against linear
    caption_epochs: int = 10


@dataclass
class DemoConfig:
    """The demo's settings; ``seed`` is passed down to every builder."""

    seed: int = 0
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    matching: MatchingConfig = field(default_factory=lambda: MatchingConfig())
    localization: LocalizationDemoConfig = field(default_factory=lambda: LocalizationDemoConfig())
    translation: TranslationDemoConfig = field(default_factory=lambda: TranslationDemoConfig())


def build_or_reuse(out: Path, config: dict, build) -> tuple[Path, bool]:  # noqa: ANN001
    """Run ``build()`` unless ``out/build.json`` records the same config; return (manifest, reused)."""
    meta = out / "build.json"
    if meta.is_file() and (out / "manifest.jsonl").is_file():
        try:
            if json.loads(meta.read_text())["config"] == json.loads(json.dumps(config)):
                return out / "manifest.jsonl", True
        except (json.JSONDecodeError, KeyError):
            pass
    build()
    return out / "manifest.jsonl", False


def plot_pairs(manifest: Manifest, features: Path, split: str = "test") -> plt.Figure:
    """One pair per digit from ``split``: the image above its log-mel."""
    cache = FeatureCache.load(features)
    picks: dict[str, object] = {}
    voices: set[str] = set()
    for rec in manifest.split(split):  # one pair per digit, each in another voice where possible
        voice = rec.extra.get("voice", "")
        if rec.label not in picks and rec.id in cache and voice not in voices:
            picks[rec.label] = rec
            voices.add(voice)
    labels = sorted(picks, key=int)
    fig, axes = plt.subplots(2, len(labels), figsize=(1.6 * len(labels), 3.6))
    for col, lab in enumerate(labels):
        rec = picks[lab]
        axes[0, col].imshow(load_image(manifest.resolve(rec, "image")).permute(1, 2, 0).numpy())
        axes[0, col].set_title(f"'{lab}'", fontsize=9)
        axes[1, col].imshow(cache[rec.id].numpy(), origin="lower", aspect="auto", cmap="magma")
        axes[1, col].set_xlabel(rec.extra.get("voice", ""), fontsize=6)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("log-mel\n(64 bands x 1 s)")
    fig.suptitle(f"AV-digits {split} pairs: unseen voices, unseen images")
    fig.tight_layout()
    return fig


def plot_scenes(manifest: Manifest, n: int = 6) -> plt.Figure:
    """Scenes with the heard digit's box (green) and the distractors' boxes (grey)."""
    recs = manifest.split("test")[:n] or manifest.records[:n]
    fig, axes = plt.subplots(1, len(recs), figsize=(2.4 * len(recs), 2.8))
    for ax, rec in zip(list(axes) if len(recs) > 1 else [axes], recs):
        ax.imshow(load_image(manifest.resolve(rec, "image")).permute(1, 2, 0).numpy())
        for x0, y0, x1, y1 in rec.boxes or ():
            ax.add_patch(mpatches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=2))
        for d in rec.extra.get("distractors", []):
            x0, y0, x1, y1 = d["box"]
            ax.add_patch(mpatches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="grey", lw=1, ls="--"))
        ax.set_title(f"heard: '{rec.label}'", fontsize=9)
        ax.axis("off")
    fig.suptitle("localization scenes: green = the digit that is spoken")
    fig.tight_layout()
    return fig


def check_table(name: str, report: CheckReport) -> list[str]:
    rows = [f"**{name}** (`{report.path}`): {report.records} usable records, {len(report.problems)} problems.", "",
            "| split | records |", "| --- | --- |"]  # fmt: skip
    rows += [f"| {s} | {c} |" for s, c in sorted(report.splits.items())]
    rows += [f"- {p}" for p in report.problems[:20]]
    return rows + [""]


def train_step(what: str, config: str, overrides: list[str], timings: dict[str, float],
               drop_heads: tuple[str, ...] = ()) -> RunResult:  # fmt: skip
    """Train (or reuse) the run ``config`` with ``overrides`` (and without ``drop_heads`` and their inits);
    its time goes to ``timings["train WHAT"]``."""
    t = time.perf_counter()
    run_config = load_run_config(config, overrides)
    for name in drop_heads:  # the head, and every init that fills it
        run_config.model.heads.pop(name)
        for init in [k for k, v in run_config.model.init.items() if any(t == f"heads.{name}" or t.startswith(f"heads.{name}.") for t in v.parts)]:
            run_config.model.init.pop(init)
    result, reused = train_or_reuse(run_config, show_progress=True)
    timings[f"train {what}" + (" (reused)" if reused else "")] = time.perf_counter() - t
    return result


def matching_section(cfg: MatchingConfig, seed: int, manifest: Path, features: Path, out: Path,
                     timings: dict[str, float]) -> list[str]:  # fmt: skip
    """Train a quick contrastive model, index the test split both ways, query, and report."""
    result = train_step("contrastive model", cfg.config, [
        f"data.manifest={manifest}", f"out={out / 'contrastive'}", f"optim.epochs={cfg.epochs}", f"seed={seed}",
        f"data.feature_cache.audio={features}"], timings)  # fmt: skip

    t = time.perf_counter()
    model = load_model(result.run_dir)
    mods = [model.towers[name].modality for name in model.embedding_towers()]
    test = ManifestDataset(manifest, model.pipelines(), split="test")
    head = next(iter(model.heads))
    metrics = {k[len(head) + 1 :]: v for k, v in model.evaluate(ordered_loader(test, 256)).items()}
    indexes = {}
    for m in mods:
        emb, _ = embed_manifest(model, manifest, m, split="test")
        build_index([emb]).save(out / f"index-{m}")
        indexes[m] = open_index(out / f"index-{m}", model)
    lines = [
        "## Matching: a quick contrastive model", "",
        f"`{Path(cfg.config).name}` trained for {cfg.epochs} epochs ({result.steps} steps) on the train split, "
        f"reading the log-mel cache above; run directory `{result.run_dir.relative_to(out)}` (config, seed, metrics, "
        "checkpoints, curves). Test split (unseen voices and images), class-level relevance:", "",
        "| direction | R@1 | R@5 | R@10 | mAP | median rank |", "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for q, g in ((mods[0], mods[1]), (mods[1], mods[0])):
        p = f"{q}_to_{g}/"
        lines.append(f"| {q} → {g} | " + " | ".join(f"{metrics[p + k]:.3f}" for k in ("R@1", "R@5", "R@10", "mAP"))
                     + f" | {metrics[p + 'median_rank']:.0f} |")  # fmt: skip
    lines += ["", "![training curves](contrastive/plots/curves.png)", "",
              f"Each test split side is indexed (`index-<modality>/`, faiss Flat, cosine). Example queries, "
              f"top {cfg.k} (green title: same digit as the query):", ""]  # fmt: skip
    picks = test.records[:: max(1, len(test) // (2 * cfg.queries))]
    for i, (q, g) in enumerate(((mods[0], mods[1]), (mods[1], mods[0]))):
        for rec in picks[i * cfg.queries : (i + 1) * cfg.queries]:
            path = test.manifest.resolve(rec, q)
            hits = search_files(model, indexes[g], q, [path], cfg.k)[0]
            png = out / "plots" / f"query-{q}-{rec.id}.png"
            plot_gallery(q, path, g, hits, png, query_label=rec.label)
            right = sum(h.metadata.get("label") == rec.label for h in hits)
            lines += [f"**{q} `{rec.id}` (digit {rec.label}) → {g}:** {right}/{len(hits)} results show the same digit.", "",
                      f"![query {rec.id}](plots/{png.name})", ""]  # fmt: skip
    timings["index + queries + metrics"] = time.perf_counter() - t
    return lines


def localization_section(cfg: LocalizationDemoConfig, seed: int, manifest: Path, matching: Path, out: Path,
                         timings: dict[str, float]) -> list[str]:  # fmt: skip
    """Train a quick localization model on the scenes (boxes unused), score the test split, draw cases."""
    result = train_step("localization model", cfg.config, [
        f"data.manifest={manifest}", f"out={out / 'localization'}", f"optim.epochs={cfg.epochs}", f"seed={seed}",
        f"model.init.matching.checkpoint={matching}", f"model.init.matching_image.checkpoint={matching}"], timings)  # fmt: skip
    t = time.perf_counter()
    model = load_model(result.run_dir)
    report = evaluate_localization(model, manifest, "test", seed=seed, show_progress=True)
    save_best_and_worst(out / "plots" / "localization-cases.png", report, model, manifest, k=cfg.cases)
    timings["localization test protocol + pictures"] = time.perf_counter() - t
    return [
        "## Localization: where in the scene is the spoken digit?", "",
        f"`{Path(cfg.config).name}` trained for {cfg.epochs} epochs ({result.steps} steps) on the scenes' train split "
        "without their boxes; its audio tower is the matching model's, frozen, and its image encoder starts from the "
        "matching model's. Test split (unseen voices and images): "
        "cIoU under three binarisation rules, negative-aware AP, the audio-swap control and baselines "
        "(docs/localization.md explains each; the full experiment is `experiments/localization.py`).", "",
        report.markdown(), "",
        "The best and the worst test scenes (heat map of the spoken digit; green: its box):", "",
        "![localization cases](plots/localization-cases.png)", "",
    ]


def translation_section(cfg: TranslationDemoConfig, seed: int, manifest: Path, out: Path,
                        timings: dict[str, float]) -> list[str]:  # fmt: skip
    """Train quick translation models on AV-digits; translate test items both ways; report with links."""
    configs, root = Path(cfg.configs), out / "translation"
    common = [f"data.manifest={manifest}", f"seed={seed}"]
    classifier = train_step("image classifier", str(configs / "teacher.toml"), [
        *common, f"out={root / 'classifier'}", f"optim.epochs={cfg.classifier_epochs}"], timings).run_dir  # fmt: skip
    from_classifier = f"model.init.classifier.checkpoint={classifier}"
    decoder = train_step("deconv image decoder", str(configs / "image-decoder.toml"), [
        *common, f"out={root / 'decoder'}", f"optim.epochs={cfg.decoder_epochs}", from_classifier], timings).run_dir  # fmt: skip
    voice = train_step("voice encoder (speech -> image)", str(configs / "speech-to-image.toml"), [
        *common, f"out={root / 'speech-to-image'}", f"optim.epochs={cfg.voice_epochs}", from_classifier,
        f"model.init.deconv.checkpoint={decoder}"], timings, drop_heads=("diffusion",)).run_dir  # fmt: skip

    t = time.perf_counter()
    voice_model = load_model(voice)
    units_file, units_manifest = root / "units.safetensors", root / "units.jsonl"
    units = reusable_units(units_file, cfg.units, seed, voice_model)  # fitted on this very voice encoder, this k and seed
    if units is None:
        log.info("fitting speech units")
        units_manifest.unlink(missing_ok=True)  # before fitting: a refit stopped midway must not leave the old manifest to the new units
        for stale in ("vocoder", "image-to-speech"):  # trained on the old units: train them again
            shutil.rmtree(root / stale, ignore_errors=True)
        units = fit_units(manifest, cfg.units, model=voice_model, tower="audio", checkpoint=str(voice), seed=seed,
                          show_progress=True)  # fmt: skip
        units.save(units_file)
    if not has_spoken_units(units_manifest):  # also one encoded before spoken units existed
        encode_manifest(units, manifest, units_manifest, show_progress=True)
        shutil.rmtree(root / "image-to-speech", ignore_errors=True)  # its targets may have been the whole clips' units
    timings["speech units (fit + encode)"] = time.perf_counter() - t
    units_args = [f"data.manifest={units_manifest}", f"seed={seed}", f"model.heads.vocoder.vocab={cfg.units}",
                  f"model.heads.vocoder.frames={cfg.vocoder_frames}"]  # fmt: skip
    vocoder = train_step("unit vocoder", str(configs / "unit-vocoder.toml"), [
        *units_args, f"out={root / 'vocoder'}", f"optim.epochs={cfg.vocoder_epochs}"], timings).run_dir  # fmt: skip
    speaker = train_step("image -> units (Show-Attend-Tell)", str(configs / "image-to-speech.toml"), [
        *units_args, f"out={root / 'image-to-speech'}", f"optim.epochs={cfg.caption_epochs}", from_classifier,
        f"model.init.vocoder.checkpoint={vocoder}", f"model.heads.caption.vocab={cfg.units}"], timings).run_dir  # fmt: skip

    t = time.perf_counter()  # one test item per digit, each way
    digits = read_manifest(manifest)
    picks = {}
    for rec in digits.split("test"):
        picks.setdefault(rec.label, rec)
    picks = [picks[label] for label in sorted(picks, key=int)]
    images = speech_to_image_files(voice_model, [digits.resolve(r, "audio") for r in picks], "deconv", seed)
    fig, axes = plt.subplots(2, len(picks), figsize=(1.3 * len(picks), 3))
    for col, (rec, image) in enumerate(zip(picks, images, strict=True)):
        axes[0, col].imshow(load_image(digits.resolve(rec, "image")).permute(1, 2, 0).numpy())
        axes[1, col].imshow(image.permute(1, 2, 0).numpy())
        axes[0, col].set_title(f"said {rec.label}", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("paired\nimage", fontsize=8)
    axes[1, 0].set_ylabel("from the\nsound", fontsize=8)
    save_figure(fig, out / "plots" / "translation-speech-to-image.png")
    sounds = " · ".join(f"[{r.label}]({Path(digits.resolve(r, 'audio')).resolve().relative_to(out.resolve())})" for r in picks)

    speaking = load_model(speaker)
    rec = picks[3 % len(picks)]
    spoken = image_to_speech_files(speaking, [digits.resolve(rec, "image")], matcher=voice_model)[0]  # the voice encoder rescores the beam
    if spoken.units:
        wav_path = root / f"speech-from-image-{rec.id}.wav"
        save_speech(wav_path, spoken)
        said = (f"became the units {' '.join(map(str, spoken.units))}: [listen]({wav_path.relative_to(out)}) "
                f"({len(spoken.waveform) / spoken.sample_rate:.2f} s)")
        save_attention(out / "plots" / "translation-attention.png", [shown_image(speaking, digits.resolve(rec, "image"))],
                       [spoken], [f"test image of a {rec.label}"])  # fmt: skip
    else:
        said = "became no units at all (the end token ranked first), so there is no speech"
    timings["translation examples"] = time.perf_counter() - t
    return [
        "## Translation: a sound becomes a picture, a picture becomes speech", "",
        f"Quick models (docs/translation.md; the full recipe with the diffusion decoder and independent judges is "
        f"`experiments/translation.py`). **Speech -> image**: a voice encoder trained {cfg.voice_epochs} epochs to "
        "regress a frozen digit classifier's image embedding of its paired picture; the deconv decoder, trained on "
        "images alone, draws the prediction. One test sound per digit (unseen voices); listen to them: " + sounds, "",
        "![speech to image](plots/translation-speech-to-image.png)", "",
        f"**Image -> speech**: {units.k} speech units (k-means over the voice encoder's temporal map), a Show-Attend-Tell "
        f"decoder from the image to units (beam search; the voice encoder hears each hypothesis spoken and keeps the one "
        f"nearest the image), and a unit vocoder with Griffin-Lim. A test image of a {rec.label} (unseen) "
        f"{said}.", "",
        *(["Where the decoder looked for each unit:", "", "![attention per unit](plots/translation-attention.png)", ""]
          if spoken.units else []),
    ]  # fmt: skip


def run(cfg: DemoConfig, out: Path) -> Path:
    """Run the demo; return the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    cfg.digits.seed = cfg.scenes.seed = cfg.seed
    atomic_write_json(out / "config.json", {"config": to_dict(cfg), "environment": environment_info(cfg.seed)})
    timings: dict[str, float] = {}

    t = time.perf_counter()
    digits_dir = out / "data" / "digits"
    digits_manifest, reused_digits = build_or_reuse(
        digits_dir, asdict(cfg.digits), lambda: build_digits(digits_dir, cfg.digits, show_progress=True)
    )
    timings["build AV-digits" + (" (reused)" if reused_digits else "")] = time.perf_counter() - t

    t = time.perf_counter()
    digits_check = check_manifest(digits_manifest, show_progress=True)
    timings["check AV-digits"] = time.perf_counter() - t
    if not digits_check.ok:
        raise AvkitError(f"AV-digits failed its check:\n{digits_check.summary()}")

    t = time.perf_counter()
    scenes_dir = out / "data" / "scenes"
    scenes_manifest, reused_scenes = build_or_reuse(
        scenes_dir, asdict(cfg.scenes),
        lambda: build_scenes(digits_dir, scenes_dir, cfg.scenes, show_progress=True),
    )  # fmt: skip
    timings["build scenes" + (" (reused)" if reused_scenes else "")] = time.perf_counter() - t
    scenes_check = check_manifest(scenes_manifest, show_progress=True)
    if not scenes_check.ok:
        raise AvkitError(f"scenes failed their check:\n{scenes_check.summary()}")

    t = time.perf_counter()  # the log-mel cache, made with the matching model's audio tower settings
    audio_tower = load_run_config(cfg.matching.config).model.towers["audio"]
    pipeline = get_modality("audio").make_pipeline(audio_tower.preprocess)
    fe: AudioSettings = pipeline.settings
    features_path = out / "features" / "logmel.safetensors"
    summary = compute_features(digits_manifest, features_path, pipeline, show_progress=True)
    feat_seconds = time.perf_counter() - t
    timings["log-mel features (load + resample + front-end)"] = feat_seconds

    digits = read_manifest(digits_manifest)
    scenes = read_manifest(scenes_manifest)
    plots = out / "plots"
    example = digits.split("test")[0]
    wav = load_audio(digits.resolve(example, "audio"), fe.sample_rate)
    save_figure(plot_three_views(wav, fe.sample_rate, fe.win_length, fe.hop_length,
                                 fe.n_fft, title=f"'{example.label}' spoken by {example.extra.get('voice')}"),
                plots / "three_views.png")  # fmt: skip
    save_figure(plot_pairs(digits, features_path), plots / "pairs.png")
    save_figure(plot_scenes(scenes), plots / "scenes.png")

    n_voices = {split: len({r.extra.get("voice") for r in digits.split(split)}) for split in ("train", "val", "test")}
    n_images = {split: len({r.extra.get("image_index") for r in digits.split(split)}) for split in ("train", "val", "test")}
    lines = [
        "# avkit demo report", "",
        f"Seed {cfg.seed}; config and environment in `config.json`. Torch threads: {torch.get_num_threads()}.", "",
        "## Data", "",
        "AV-digits: the ten digit words spoken by espeak-ng (in-process, through espeakng-loader) paired with "
        "scikit-learn's real handwritten digits. Test voices are never heard in training and test images never seen.", "",
        "| split | pairs | voices | distinct source images |", "| --- | --- | --- | --- |",
        *[f"| {s} | {len(digits.split(s))} | {n_voices[s]} | {n_images[s]} |" for s in ("train", "val", "test")], "",
        *check_table("AV-digits check", digits_check),
        *check_table("Scenes check", scenes_check),
        "## Front-end", "",
        f"Hamming window A={fe.win_length}, hop B={fe.hop_length}, n_fft={fe.n_fft}, "
        f"{fe.n_mels} Slaney mel bands, dB (floor {fe.top_db} dB below each clip's peak). "
        f"Cached {summary['count']} log-mels of shape "
        f"{tuple(summary['shape'][1:])} to `{features_path.relative_to(out)}` in {feat_seconds:.1f} s "
        f"({summary['count'] / feat_seconds:.0f} clips/s including decoding). "
        "Front-end-only throughput against torchaudio, librosa and scipy: see docs/benchmarks.md.", "",
        "![three views](plots/three_views.png)", "",
        "![pairs](plots/pairs.png)", "",
        "## Localization scenes", "",
        "![scenes](plots/scenes.png)", "",
        *matching_section(cfg.matching, cfg.seed, digits_manifest, features_path, out, timings),
        *localization_section(cfg.localization, cfg.seed, scenes_manifest, out / "contrastive", out, timings),
        *translation_section(cfg.translation, cfg.seed, digits_manifest, out, timings),
        "## Timings", "", "| step | seconds |", "| --- | --- |",
        *[f"| {k} | {v:.1f} |" for k, v in timings.items()], "",
    ]  # fmt: skip
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set digits.size=small (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(DemoConfig, args.config, args.overrides)
        report = run(cfg, args.out)
    except AvkitError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"demo finished: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
