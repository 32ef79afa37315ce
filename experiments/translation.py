"""Cross-modal translation on AV-digits: a sound becomes a picture (Speech2Face's recipe).

    python experiments/translation.py                    # writes its section of docs/results.md
    python experiments/translation.py --quick --out runs/translation-quick --results runs/translation-quick/results.md

1. **Image classifier** (``teacher.toml``): its image tower plays the part of Speech2Face's
   face network; every later run copies it, frozen.
2. **Image decoders**, trained on images alone to render that tower's embedding:
   ``image-decoder.toml`` (deconv: pixel L1 + feature matching through the frozen tower)
   and ``image-decoder-diffusion.toml`` (a diffusers U-Net with cross-attention, MSE on its
   velocity prediction, the condition dropped on 10% of items for classifier-free guidance).
3. **Voice encoder** (``speech-to-image.toml``): an audio tower regresses the frozen embedding
   of its paired image (L1 between normalised embeddings + KL on the frozen classifier's
   logits, T = 2); both decoders are copied in, frozen, to render its predictions.
4. **Judges**, trained on real data only, with their own architectures and seeds
   (``image-judge.toml``, ``audio-judge.toml``); their accuracy on real test items comes first.
5. **Sampling settings** of the diffusion decoder (guidance scale) chosen on validation by the
   image judge; then the **test** split (unseen voices and images): the image judge's accuracy
   against the spoken digit, and the Fréchet distance to real test images in the judge's
   penultimate features, for each decoder and for two baselines (the class-mean training image;
   a random training image).

6. **Image -> speech** (Hsu et al. 2021, text-free): speech units from faiss k-means over
   the voice encoder's temporal map (``avkit units fit --checkpoint``), every clip encoded as
   units with repeats collapsed (``avkit units encode``); log-mel units are fitted too and
   compared (how alike two utterances of one digit are, in units); two unit vocoders trained
   on real speech alone (``unit-vocoder.toml``, linear-magnitude or mel frames, Griffin-Lim),
   the one whose resynthesised validation speech the audio judge reads best is kept; a
   Show-Attend-Tell decoder from the frozen classifier's map to units
   (``image-to-speech.toml``, seeds 0, 1, 2). On test (unseen images): the audio judge's accuracy against the
   pictured digit and the unit edit distance to real utterances of that digit, for greedy
   decoding and beams 3 and 5 (their length penalty chosen on validation), each ranked by log p alone and
   rescored by the voice encoder (the hypothesis whose speech it embeds nearest the image), beside a
   random training utterance and the units of the class-mean frames.

Every run records its config, seed and commit in its run directory; this script writes
``results.json`` beside them, a grid of generated images, attention maps, and its section of
``docs/results.md``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, map_batches, ordered_loader
from avkit.data.digits import DigitsConfig, build_digits
from avkit.data.manifest import Manifest, read_manifest
from avkit.errors import AvkitError
from avkit.evaluation.generation import accuracy, frechet_distance
from avkit.evaluation.paired import paired_difference
from avkit.evaluation.sequences import edit_distance
from avkit.fileio import atomic_write_json
from avkit.models import AVModel, load_model
from avkit.plotting import plt, save_figure
from avkit.progress import progress
from avkit.provenance import environment_info, git_commit
from avkit.reporting import update_section
from avkit.train import RunResult, load_run_config, train_or_reuse
from avkit.translation import (
    SpeechUnits,
    Spoken,
    encode_manifest,
    fit_units,
    image_to_speech_heads,
    speech_to_image,
)
from avkit.translation.image_to_speech import nearest_hypotheses, speak_hypotheses
from avkit.translation.plots import save_attention
from avkit.translation.units import SPOKEN, collapse, has_spoken_units, reusable_units
from avkit.vision.transforms import denormalize, normalize

log = logging.getLogger("translation")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "configs"
TARGETS = {"judge": 0.97, "speech_to_image": 0.90, "image_to_speech": 0.80, "training_minutes": 30}
#: diffusion sampling settings tried on validation: classifier-free guidance scale x DDIM eta (0: deterministic)
SAMPLING = [{"guidance": g, "eta": eta} for eta in (0.0, 1.0) for g in (1.0, 1.5, 2.0, 3.0)]
#: the units' k. At 50, the vocoder spoke some digits' commonest unit sequences so that the audio judge heard
#: another digit (in one chain 3 and 7 as 6), and image -> speech fell with them; at 100 the judge heard such
#: sequences right more often (that chain: 0.861-0.909 for three k-means seeds, against 0.695; docs/translation.md,
#: "How many units")
UNITS_K = 100
PHASE_DRAW_STRIDE = 1_000_000_007  # the control's extra phase draws: seeds apart from every image's own
VOCODER_FRAMES = ("linear", "mel")
BEAMS = (3, 5)
#: image -> units decodings: greedy; the beams' best hypothesis by log p; the beams' hypotheses rescored by the voice encoder
DECODINGS = {"greedy": {"beam": 1}, **{f"beam {b}": {"beam": b} for b in BEAMS},
             **{f"beam {b}, rescored": {"beam": b, "rescore": True} for b in BEAMS},
             "greedy, best of 5 phase draws": {"beam": 1, "phase_draws": 5}}
CONTROL = "greedy, best of 5 phase draws"  # rescoring without a beam: a row beside the targets, not one of them
WHOLE_CLIP = "caption-whole-clip"  # the ablation: a decoder trained on the whole clip's units, silences kept
SHOWN = "beam 5, rescored"  # the decoding whose attention maps the report draws
CAPTION_SEEDS = 3  # image -> units decoders trained, seeds 0, 1, 2
#: the beams', tried on validation. With k = 100 units, validation read the beams better at every step up to 1,
#: the old grid's edge, so the grid goes on past it (docs/translation.md, "How many units")
LENGTH_PENALTIES = (0.0, 0.5, 1.0, 2.0, 3.0)


def pipeline_seconds(seconds: dict[str, float]) -> float:
    """Training seconds of the translation models themselves: not the judges, the extra caption seeds, the ablation."""
    return sum(v for k, v in seconds.items() if not k.endswith("-judge") and "-seed" not in k and k != WHOLE_CLIP)


def run_seconds(result: RunResult) -> float:
    """Seconds of the run's training steps, over every session (also for a reused run)."""
    return float(json.loads((Path(result.run_dir) / "summary.json").read_text())["train_seconds"])


def to_unit_range(model: AVModel, tower: str, x: torch.Tensor) -> torch.Tensor:
    """A tower's normalised images ``(B, 3, H, W)`` -> pixels in [0, 1]."""
    s = model.towers[tower].settings()
    return denormalize(x, s["mean"], s["std"])


@torch.no_grad()
def judge_images(judge: AVModel, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The image judge's ``(logits (N, 10), penultimate features (N, D))`` of pixels ``(N, 3, H, W)`` in [0, 1]."""
    s = judge.towers["image"].settings()
    x = normalize(images, s["mean"], s["std"])
    judge.eval()
    logits, feats = [], []
    for chunk in x.split(batch_size):
        out = judge.towers["image"](chunk)
        logits.append(judge.heads["classify"].logits(out))
        feats.append(out.pooled)
    return torch.cat(logits), torch.cat(feats)


def generate_split(model: AVModel, manifest: Path, split: str, decoder: str, seed: int, **options: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(generated images (N, 3, H, W) in [0, 1], real images (N, 3, H, W), labels (N,))`` of a split's pairs."""
    ds = ManifestDataset(manifest, model.pipelines(), split=split, label_names=model.config.labels)
    generator = torch.Generator().manual_seed(seed)
    images, real, labels = [], [], []

    def translate(batch):  # one batch: generated and real images, labels
        images.append(speech_to_image(model, batch, decoder, generator, **options))
        real.append(to_unit_range(model, "image", batch.inputs["image"]))
        labels.append(batch.labels)
        return batch.labels

    map_batches(ds, translate, batch_size=128, show_progress=True, desc=f"{decoder} on {split}")
    return torch.cat(images), torch.cat(real), torch.cat(labels)


def split_images(model: AVModel, manifest: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's real images ``(N, 3, H, W)`` in [0, 1] and labels, through the model's image pipeline."""
    ds = ManifestDataset(manifest, {"image": model.pipelines()["image"]}, split=split, label_names=model.config.labels)
    labels: list[torch.Tensor] = []
    images, _, _ = map_batches(ds, lambda b: labels.append(b.labels) or to_unit_range(model, "image", b.inputs["image"]))
    return images, torch.cat(labels)


def audio_judge_accuracy(judge: AVModel, manifest: Path, split: str) -> float:
    """The audio judge's accuracy on a split's real speech."""
    ds = ManifestDataset(manifest, judge.pipelines(), split=split, label_names=judge.config.labels)
    metrics = judge.evaluate(ordered_loader(ds, 128))
    return metrics["classify/accuracy"]


def save_grid(path: Path, rows: dict[str, torch.Tensor], labels: torch.Tensor, per_digit: int = 4) -> Path:
    """Per spoken digit (rows): the real paired images, then each decoder's images, ``per_digit`` voices each."""
    fig, axes = plt.subplots(10, len(rows), figsize=(1.6 * per_digit * len(rows) / 2, 10), squeeze=False)
    for col, (name, images) in enumerate(rows.items()):
        for digit in range(10):
            picked = images[(labels == digit).nonzero().flatten()[:per_digit]]
            ax = axes[digit, col]
            ax.imshow(torch.cat(list(picked), dim=-1).mean(0), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"said {digit}", rotation=0, ha="right", va="center")
            if digit == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle("speech -> image on test voices (unseen): each row's sounds say the digit", fontsize=10)
    save_figure(fig, path)
    return path


@dataclass
class Runs:
    """Run directories by name, and each run's training seconds."""

    dirs: dict[str, Path]
    seconds: dict[str, float]


def speech_to_image_report(runs: Runs, manifest: Path, seed: int, results_dir: Path, steps: int | None = None
                           ) -> tuple[list[str], dict, list[tuple[str, bool]]]:  # fmt: skip
    """Judge speech -> image on test; the sampling settings chosen on validation. Returns (Markdown lines, data, checks)."""
    model = load_model(runs.dirs["speech-to-image"])
    image_judge = load_model(runs.dirs["image-judge"])
    steps = steps or model.heads["diffusion"].decoder.sampling["steps"]
    sampling_val = []
    for options in SAMPLING:
        gen, _, labels = generate_split(model, manifest, "val", "diffusion", seed, steps=steps, **options)
        sampling_val.append({**options, "judge_accuracy": accuracy(judge_images(image_judge, gen)[0], labels)})
    best = max(sampling_val, key=lambda r: (r["judge_accuracy"], -r["guidance"], -r["eta"]))
    chosen = {"guidance": best["guidance"], "eta": best["eta"], "steps": steps}
    log.info("sampling on validation: %s; chosen %s", sampling_val, chosen)

    real_train, train_labels = split_images(model, manifest, "train")
    generated: dict[str, torch.Tensor] = {}
    for name, options in (("deconv", {}), ("diffusion", chosen)):
        generated[name], real_test, test_labels = generate_split(model, manifest, "test", name, seed, **options)
    class_means = torch.stack([real_train[train_labels == d].mean(0) for d in range(10)])
    pick = torch.randint(len(real_train), (len(test_labels),), generator=torch.Generator().manual_seed(seed))
    baselines = {"class-mean training image (of the spoken digit)": class_means[test_labels],
                 "random training image": real_train[pick]}  # fmt: skip
    real_logits, real_feats = judge_images(image_judge, real_test)
    _, train_feats = judge_images(image_judge, real_train)
    table: dict[str, dict[str, float]] = {}
    for name, images in {**{f"decoder: {k}": v for k, v in generated.items()}, **baselines}.items():
        logits, feats = judge_images(image_judge, images)
        table[name] = {"judge_accuracy": accuracy(logits, test_labels), "frechet": frechet_distance(feats, real_feats)}
    judge = accuracy(real_logits, test_labels)
    reference_fd = frechet_distance(train_feats, real_feats)
    test_pairs = ManifestDataset(manifest, model.pipelines(), split="test", label_names=model.config.labels)
    voice_test = {k.split("/", 1)[1]: v for k, v in model.evaluate(ordered_loader(test_pairs, 128)).items()
                  if k.startswith("voice/")}  # fmt: skip
    grid = save_grid(results_dir / "translation_speech_to_image.png",
                     {"real paired image": real_test, **generated}, test_labels)  # fmt: skip
    lines = [
        "### Speech -> image (Speech2Face's recipe)", "",
        "The voice encoder regresses the frozen embedding of a digit-image classifier's tower; two decoders trained "
        "on images alone render it. Test items have unseen voices and unseen images.", "",
        f"The image judge reads real test images with accuracy {judge:.3f}. The voice encoder on test: cosine to "
        f"the true image embedding {voice_test['cosine']:.3f}; the frozen classifier reads the spoken digit from "
        f"its prediction with accuracy {voice_test['accuracy']:.3f}.", "",
        f"Diffusion sampling chosen on validation by the image judge: guidance {chosen['guidance']:g}, DDIM eta "
        f"{chosen['eta']:g}, {steps} steps. Validation accuracy (guidance: eta 0 / eta 1): "
        + ", ".join(f"{g:g}: {_val(sampling_val, g, 0.0):.3f} / {_val(sampling_val, g, 1.0):.3f}"
                    for g in sorted({r['guidance'] for r in sampling_val})) + ".", "",
        f"Test split, {len(test_labels)} sounds:", "",
        "| images | image judge reads the spoken digit | Fréchet distance to real test images |",
        "| --- | --- | --- |",
        *(f"| {k} | {v['judge_accuracy']:.3f} | {v['frechet']:.2f} |" for k, v in table.items()),
        f"| (real training images, for scale) | — | {reference_fd:.2f} |", "",
        "The Fréchet distance is taken in the image judge's penultimate features (FID's formula; no Inception "
        "network here). Lower is closer to the real images' distribution.", "",
        f"![generated images per spoken digit]({grid.name})", "",
    ]  # fmt: skip
    checks = [(f"image judge on real test images ≥ {TARGETS['judge']}: {judge:.3f}", judge >= TARGETS["judge"])]
    for name in generated:
        acc = table[f"decoder: {name}"]["judge_accuracy"]
        checks.append((f"speech -> image, {name}: the judge reads the spoken digit in {acc:.3f} of images "
                       f"(≥ {TARGETS['speech_to_image']})", acc >= TARGETS["speech_to_image"]))  # fmt: skip
    fd = {k: table[f"decoder: {k}"]["frechet"] for k in generated}
    checks.append((f"diffusion's Fréchet distance {fd['diffusion']:.2f} < deconv's {fd['deconv']:.2f}",
                   fd["diffusion"] < fd["deconv"]))  # fmt: skip
    data = {"judge": judge, "voice_test": voice_test, "sampling_val": sampling_val, "sampling": chosen,
            "test": table, "reference_frechet": reference_fd}  # fmt: skip
    return lines, data, checks


def _cell(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def _range(row: dict[str, float]) -> str:
    return f" ({row['judge_min']:.3f}–{row['judge_max']:.3f})" if "judge_min" in row else ""


def _val(rows: list[dict[str, float]], guidance: float, eta: float) -> float:
    return next(r["judge_accuracy"] for r in rows if r["guidance"] == guidance and r["eta"] == eta)


@torch.no_grad()
def judge_speech(judge: AVModel, waveforms: list[torch.Tensor]) -> torch.Tensor:
    """The audio judge's logits ``(N, 10)`` for waveforms of any length (each centre-cropped or padded to its clip)."""
    pipe = judge.pipelines()["audio"]
    judge.eval()
    logits = []
    for i in range(0, len(waveforms), 128):
        x, lengths = pipe.collate([pipe(w, None, None)[0] for w in waveforms[i : i + 128]])
        out = judge.towers["audio"](x, lengths)
        logits.append(judge.heads["classify"].logits(out))
    return torch.cat(logits)


def judge_reading(judge: AVModel, waveforms: list[torch.Tensor]) -> torch.Tensor:
    """The digit ``(N,)`` the audio judge hears in each waveform; an empty one (no units decoded) reads -1."""
    spoken = [i for i, w in enumerate(waveforms) if len(w)]
    reading = torch.full((len(waveforms),), -1, dtype=torch.long)
    if spoken:
        reading[spoken] = judge_speech(judge, [waveforms[i] for i in spoken]).argmax(1).cpu()
    return reading


def speech_accuracy(judge: AVModel, waveforms: list[torch.Tensor], labels: torch.Tensor) -> tuple[float, int]:
    """``(accuracy, empty)``: the audio judge's accuracy; an empty waveform (no units decoded) counts as a miss."""
    return float((judge_reading(judge, waveforms) == labels).float().mean()), sum(not len(w) for w in waveforms)


def unit_separation(units: SpeechUnits, manifest: Path, split: str = "val", limit: int = 200) -> dict[str, float]:
    """How alike two utterances of one digit are in units, against two of different digits: the mean
    edit distance over the longer length, over pairs of a split's first ``limit`` clips; units per clip."""
    lines = read_manifest(manifest, modalities=["audio"])
    records = lines.split(split)[:limit]
    pipe = units.pipeline()
    seqs = [units.encode(lines.load(r, pipe))[0] for r in records]
    same, other = [], []
    for i in range(len(seqs)):
        for j in range(i + 1, len(seqs)):
            d = edit_distance(seqs[i], seqs[j]) / max(len(seqs[i]), len(seqs[j]), 1)
            (same if records[i].label == records[j].label else other).append(d)
    return {"units_per_clip": float(np.mean([len(q) for q in seqs])), "same_digit": float(np.mean(same)),
            "other_digit": float(np.mean(other)), "clips": len(seqs)}  # fmt: skip


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """``‖S − Ŝ‖_F / ‖S‖_F`` of two magnitude spectrograms, over their common frames."""
    t = min(reference.shape[-1], estimate.shape[-1])
    return float((reference[..., :t] - estimate[..., :t]).norm() / reference[..., :t].norm())


def unit_records(lines: Manifest, split: str, field: str = SPOKEN) -> list[tuple[str, list[int]]]:
    """``(label, units)`` of a split's lines of a units manifest that have units (``field``: the spoken ones, or
    ``"units"``, the whole clip's)."""
    return [(r.label, r.extra[field]) for r in lines.split(split) if field in r.extra]


@torch.no_grad()
def vocoder_scores(model: AVModel, units_manifest: Path, split: str, audio_judge: AVModel, limit: int = 200) -> dict[str, float]:
    """A vocoder run on a split's real utterances, spoken from their own units: the audio judge's accuracy
    (predicted durations), and spectral convergence against the real |STFT| (true durations: aligned frames)."""
    torch.manual_seed(0)  # Griffin-Lim's random phases
    head = model.heads["vocoder"]
    records = [r for r in read_manifest(units_manifest).split(split) if "units" in r.extra][:limit]
    pipe = model.pipelines()["audio"]
    spoken, labels, sc, sc_oracle = [], [], [], []
    for rec in records:
        units, durations = rec.extra["units"], rec.extra["unit_durations"]
        spoken.append(head.speak(units))
        labels.append(int(rec.label))
        wav = pipe.load_tensor(rec.paths["audio"])
        real = head.spectrogram(wav)
        log_frames = head.vocoder(torch.tensor([units]), torch.tensor([durations]))[0][0]
        sc.append(spectral_convergence(real, head.spectrogram(head.griffin_lim(head.magnitude(log_frames)))))
        target = head.target_frames(wav[None], None)[0][0]  # the frames it was trained to predict
        sc_oracle.append(spectral_convergence(real, head.spectrogram(head.griffin_lim(head.magnitude(target)))))
    acc = accuracy(judge_speech(audio_judge, spoken), torch.tensor(labels))
    return {"judge_accuracy": acc, "spectral_convergence": float(np.mean(sc)), "oracle_spectral_convergence": float(np.mean(sc_oracle))}


def mean_unit_distance(hypothesis: list[int], references: list[list[int]]) -> float:
    """The mean over ``references`` of edit distance / reference length."""
    return float(np.mean([edit_distance(hypothesis, ref) / max(len(ref), 1) for ref in references]))


def caption_runs(runs: Runs) -> list[str]:
    """The image -> units runs, one per caption seed (the first is the one ``avkit translate`` examples use)."""
    return [name for name in runs.dirs if name.startswith("image-to-speech")]


def decode_split(model: AVModel, units_manifest: Path, split: str, decodings: dict[str, dict[str, float]],
                 matcher: AVModel | None = None, seed: int = 0, shown: str | None = None,
                 ) -> tuple[dict[str, list[Spoken]], list[int], dict[int, tuple[torch.Tensor, Spoken]]]:  # fmt: skip
    """Every image of a split spoken by each of ``decodings`` (name -> ``beam``, ``length_penalty``;
    ``rescore``: the beam's hypotheses rescored by ``matcher``; ``phase_draws``: the control, see
    :func:`best_of_phase_draws`): ``(speech by decoding, labels, {digit: (its first image (H, W),
    the ``shown`` decoding's speech)})``. Decodings that differ only in what they do with the beam
    share one search and its spoken hypotheses. Image ``i`` of the split is spoken from Griffin-Lim
    phases seeded by ``seed`` and ``i`` whatever the decoding, so two decodings that emit the same
    units for it give the same speech (common random numbers: what differs is the units)."""
    ds = ManifestDataset(units_manifest, {"image": model.pipelines()["image"]}, split=split, label_names=model.config.labels)
    searches: dict[tuple, bool] = {}  # a beam search's options -> whether every hypothesis is to be spoken (rescoring)
    for options in decodings.values():
        searches[search_key(options)] = searches.get(search_key(options), False) or bool(options.get("rescore"))
    spoken: dict[str, list[Spoken]] = {name: [] for name in decodings}
    labels: list[int] = []
    examples: dict[int, tuple[torch.Tensor, Spoken]] = {}
    batch_size = 64
    for index, batch in enumerate(progress(ordered_loader(ds, batch_size), desc=f"image -> speech ({split})", unit="batch")):
        hypotheses = {}
        phase_seed = seed * 1_000_003 + index * batch_size  # image i of the split: phase_seed + i within its batch
        for key, everyone in searches.items():  # every decoding speaks image i from the same phases: a paired comparison
            hypotheses[key] = speak_hypotheses(model, batch, spoken=None if everyone else 1, phase_seed=phase_seed, **dict(key))
        for name, options in decodings.items():
            said = hypotheses[search_key(options)]
            chosen = nearest_hypotheses(matcher, model, batch, said) if options.get("rescore") else [h[0] for h in said]
            if options.get("phase_draws"):
                chosen = best_of_phase_draws(model, matcher, batch, chosen, int(options["phase_draws"]), phase_seed)
            spoken[name] += chosen
            for i, one in enumerate(chosen):
                label = int(batch.labels[i])
                if name == shown and label not in examples:
                    examples[label] = (to_unit_range(model, "image", batch.inputs["image"][i : i + 1])[0].mean(0), one)
        labels += batch.labels.tolist()
    return spoken, labels, examples


def search_key(options: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """A decoding's beam-search options (what it does with the hypotheses left out), as a dict key."""
    return tuple(sorted((k, v) for k, v in options.items() if k not in ("rescore", "phase_draws")))


def best_of_phase_draws(model: AVModel, matcher: AVModel, batch: Batch, said: list[Spoken], draws: int,
                        phase_seed: int) -> list[Spoken]:  # fmt: skip
    """The control for rescoring: each item's units spoken ``draws`` times (Griffin-Lim's random phases
    differ), and the draw ``matcher`` embeds nearest the image kept. ``said`` was spoken from phases
    ``phase_seed + i``; draw ``d`` > 0 of item ``i`` from ``phase_seed + i + d * PHASE_DRAW_STRIDE``.
    What rescoring gains beyond this, it gains from the beam's other hypotheses."""
    _, vocoder = image_to_speech_heads(model)
    spoken_again = [[one, *(dataclasses.replace(one, waveform=vocoder.speak(one.units, phase_seed + i + d * PHASE_DRAW_STRIDE))
                            for d in range(1, draws))] for i, one in enumerate(said)]  # fmt: skip
    return nearest_hypotheses(matcher, model, batch, spoken_again)


@torch.no_grad()
def voice_encoder_reading(matcher: AVModel, waveforms: list[torch.Tensor]) -> torch.Tensor:
    """The digit ``(N,)`` the voice encoder hears: its frozen image classifier on its predicted embedding
    (how close the rescorer is to a digit recogniser; an empty waveform reads -1)."""
    voice = matcher.heads["voice"]
    pipe = matcher.pipelines()[voice.student]
    spoken = [i for i, w in enumerate(waveforms) if len(w)]
    reading = torch.full((len(waveforms),), -1, dtype=torch.long)
    for start in range(0, len(spoken), 128):
        part = spoken[start : start + 128]
        x, lengths = pipe.collate([pipe(waveforms[i])[0] for i in part])
        output = matcher.tower_output(voice.student, Batch.of(voice.student, x, lengths))
        reading[part] = voice.teacher_classifier(voice.predict(output)).argmax(1).cpu()
    return reading


def references_by_digit(records: list[tuple[str, list[int]]]) -> dict[int, list[list[int]]]:
    """Real unit sequences ``(label, units)`` grouped by digit."""
    references: dict[int, list[list[int]]] = {d: [] for d in range(10)}
    for label, seq in records:
        references[int(label)].append(seq)
    return references


def score_decodings(spoken: dict[str, list[Spoken]], labels: list[int], references: dict[int, list[list[int]]],
                    audio_judge: AVModel, matcher: AVModel, onset: int | None = None,
                    ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:  # fmt: skip
    """Per decoding: the audio judge's accuracy against the pictured digit, the voice encoder's own reading
    and its agreement with the judge, empty sequences, unit edit distance to ``references`` of the digit,
    units per utterance, and (``onset``) how often the sequence begins with that unit; and, per decoding,
    the judge's verdict on each image ``(N,)`` 0/1, for a paired comparison of decodings."""
    y = torch.tensor(labels)
    scores, correct = {}, {}
    for name, said in spoken.items():
        sequences, waveforms = [s.units for s in said], [s.waveform for s in said]
        judged, heard = judge_reading(audio_judge, waveforms), voice_encoder_reading(matcher, waveforms)
        scores[name] = {
            "judge_accuracy": float((judged == y).float().mean()), "empty": sum(not s for s in sequences),
            "voice_encoder_accuracy": float((heard == y).float().mean()),
            "agreement": float((heard == judged).float().mean()),
            "unit_distance": float(np.mean([mean_unit_distance(seq, references[d]) for seq, d in zip(sequences, labels, strict=True)])),
            "units": float(np.mean([len(s) for s in sequences])),
            **({"onset": float(np.mean([bool(s) and s[0] == onset for s in sequences]))} if onset is not None else {})}  # fmt: skip
        correct[name] = (judged == y).int().numpy()
    return scores, correct


def whole_clip_ablation(runs: Runs, units_manifest: Path, lines: Manifest, audio_judge: AVModel, matcher: AVModel,
                        penalty: float, seed: int) -> dict:  # fmt: skip
    """The decoder trained on the whole clip's units (silences kept; seed 0), decoded greedy and by the beams
    (log p alone) on test, against whole-clip references; which unit whole clips begin with most, and how often."""
    train = unit_records(lines, "train", "units")
    onset, count = collections.Counter(seq[0] for _, seq in train if seq).most_common(1)[0]
    decodings = {"greedy": {"beam": 1}, **{f"beam {b}": {"beam": b, "length_penalty": penalty} for b in BEAMS}}
    spoken, labels, _ = decode_split(load_model(runs.dirs[WHOLE_CLIP]), units_manifest, "test", decodings, seed=seed)
    references = references_by_digit(unit_records(lines, "test", "units"))
    spoken_train = unit_records(lines, "train")
    return {"onset": onset, "onset_share": count / len(train),
            "units_per_clip": float(np.mean([len(s) for _, s in train])),
            "spoken_units_per_clip": float(np.mean([len(s) for _, s in spoken_train])),
            "test": score_decodings(spoken, labels, references, audio_judge, matcher, onset)[0]}


def choose_length_penalty(runs: Runs, units_manifest: Path, audio_judge: AVModel, seed: int) -> tuple[float, dict]:
    """The beams' length penalty: the one whose speech the audio judge reads best on validation,
    over beams 3 and 5 (ranked by log p alone) and every caption seed. Returns it and the validation accuracies."""
    candidates = {f"beam {beam}, length penalty {a:g}": {"beam": beam, "length_penalty": a} for beam in BEAMS for a in LENGTH_PENALTIES}
    candidates["greedy"] = {"beam": 1}
    scores: dict[str, list[float]] = {name: [] for name in candidates}
    for run in caption_runs(runs):
        spoken, labels, _ = decode_split(load_model(runs.dirs[run]), units_manifest, "val", candidates, seed=seed)
        for name, said in spoken.items():
            scores[name].append(speech_accuracy(audio_judge, [s.waveform for s in said], torch.tensor(labels))[0])
    val = {name: float(np.mean(v)) for name, v in scores.items()}
    by_penalty = {a: np.mean([val[f"beam {beam}, length penalty {a:g}"] for beam in BEAMS]) for a in LENGTH_PENALTIES}
    chosen = max(LENGTH_PENALTIES, key=lambda a: (by_penalty[a], -a))
    log.info("length penalty on validation: %s; chosen %g", val, chosen)
    return chosen, val


def image_to_speech_report(runs: Runs, units_manifest: Path, units: SpeechUnits, separation: dict[str, dict[str, float]],
                           vocoder_val: dict[str, dict[str, float]], chosen: str, seed: int, results_dir: Path
                           ) -> tuple[list[str], dict, list[tuple[str, bool]]]:  # fmt: skip
    """Judge image -> speech on test. Returns (Markdown lines, data, checks)."""
    model = load_model(runs.dirs["image-to-speech"])
    audio_judge = load_model(runs.dirs["audio-judge"])
    _, vocoder = image_to_speech_heads(model)
    vocoder_test = {f: vocoder_scores(load_model(runs.dirs[f"vocoder-{f}"]), units_manifest, "test", audio_judge)
                    for f in VOCODER_FRAMES}  # fmt: skip
    lines_read = read_manifest(units_manifest)
    test_units = unit_records(lines_read, "test")
    references = references_by_digit(test_units)
    penalty, penalty_val = choose_length_penalty(runs, units_manifest, audio_judge, seed)
    decodings = {name: {**options, "length_penalty": penalty} for name, options in DECODINGS.items()}
    matcher = load_model(runs.dirs["speech-to-image"])  # the voice encoder: it rescores the beams' hypotheses
    train = unit_records(lines_read, "train")
    per_seed: dict[str, list[dict[str, float]]] = {name: [] for name in DECODINGS}
    verdicts: dict[str, list[np.ndarray]] = {name: [] for name in DECODINGS}
    examples: dict[int, tuple[torch.Tensor, Spoken]] = {}
    for run in caption_runs(runs):
        spoken, labels, run_examples = decode_split(load_model(runs.dirs[run]), units_manifest, "test", decodings,
                                                    matcher, seed, SHOWN)  # fmt: skip
        examples = examples or run_examples  # the attention pictures: the first seed's
        scores, correct = score_decodings(spoken, labels, references, audio_judge, matcher)
        for name, row in scores.items():
            per_seed[name].append(row)
            verdicts[name].append(correct[name])
    y = torch.tensor(labels)
    correct = {name: np.stack(rows) for name, rows in verdicts.items()}  # (seeds, images)
    table: dict[str, dict[str, float]] = {}
    for name, rows in per_seed.items():
        accs = [r["judge_accuracy"] for r in rows]
        table[f"image -> units, {name}"] = {
            "judge_accuracy": float(np.mean(accs)), "judge_min": min(accs), "judge_max": max(accs),
            "empty": sum(r["empty"] for r in rows), "per_seed": rows,
            **{k: float(np.mean([r[k] for r in rows]))
               for k in ("unit_distance", "units", "voice_encoder_accuracy", "agreement")}}  # fmt: skip
    whole_clip = whole_clip_ablation(runs, units_manifest, lines_read, audio_judge, matcher, penalty, seed)
    # baselines: a random training utterance (its real audio and units); the units of the class-mean frames
    train_records = [r for r in lines_read.split("train") if SPOKEN in r.extra]  # aligned with ``train``
    rng = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(train), (len(labels),), generator=rng).tolist()
    audio_pipe = model.pipelines()["audio"]
    random_audio = [audio_pipe.load_tensor(train_records[i].paths["audio"]) for i in pick]
    table["random training utterance"] = {
        "judge_accuracy": accuracy(judge_speech(audio_judge, random_audio), y),
        "unit_distance": float(np.mean([mean_unit_distance(train[i][1], references[d]) for i, d in zip(pick, labels, strict=True)])),
        "units": float(np.mean([len(train[i][1]) for i in pick]))}  # fmt: skip
    class_mean_units = {}
    frame_pipe = units.pipeline()
    for d in range(10):
        frames = [units.frames(frame_pipe.load_tensor(r.paths["audio"])) for r in train_records if int(r.label) == d]
        length = min(len(f) for f in frames)
        class_mean_units[d], _ = collapse(units.assign(torch.stack([f[:length] for f in frames]).mean(0)))
    torch.manual_seed(seed)  # Griffin-Lim's random phases
    whole_clips = references_by_digit(unit_records(lines_read, "test", "units"))  # the class-mean frames span whole clips
    table["units of the class-mean frames (of the pictured digit; whole clips, distance to whole clips' units)"] = {
        "judge_accuracy": accuracy(judge_speech(audio_judge, [vocoder.speak(class_mean_units[d]) for d in labels]), y),
        "unit_distance": float(np.mean([mean_unit_distance(class_mean_units[d], whole_clips[d]) for d in labels])),
        "units": float(np.mean([len(class_mean_units[d]) for d in labels]))}  # fmt: skip
    table["(another real test utterance of that digit, for scale)"] = {
        "judge_accuracy": float("nan"),
        "unit_distance": float(np.mean([mean_unit_distance(seq, [r for r in references[int(label)] if r is not seq])
                                        for label, seq in test_units])),
        "units": float(np.mean([len(seq) for _, seq in test_units]))}  # fmt: skip
    chosen_examples = [examples[d] for d in sorted(examples)[:6]]
    figure = save_attention(results_dir / "translation_image_to_speech.png", [e[0] for e in chosen_examples],
                            [e[1] for e in chosen_examples], [f"digit {d}" for d in sorted(examples)[:6]])  # fmt: skip
    test_records = lines_read.split("test")
    judge_real = accuracy(judge_speech(audio_judge, [audio_pipe.load_tensor(r.paths["audio"]) for r in test_records]),
                          torch.tensor([int(r.label) for r in test_records]))  # fmt: skip
    greedy_row, rescored_row = table["image -> units, greedy"], table["image -> units, beam 5, rescored"]
    against_greedy = {name: paired_difference(correct[name], correct["greedy"], seed=seed)
                      for name in DECODINGS if name not in ("greedy", CONTROL)}  # fmt: skip
    lines = [
        "### Image -> speech through discrete units (Hsu et al. 2021, text-free)", "",
        f"Units: faiss k-means, k = {units.k}, over the voice encoder's temporal map ({units.frames_per_second:g} "
        f"frames per second; {units.fitted_on['frames']} frames of {units.fitted_on['clips']} training clips), "
        "repeats collapsed. Log-mel units (100 frames per second) were fitted too; on the background noise "
        "of these clips they flicker between neighbouring clusters, and two utterances of one digit are "
        "hardly closer in them than utterances of two digits, so no image can say which sequence to emit "
        f"(validation, {next(iter(separation.values()))['clips']} clips; edit distance over the longer sequence):", "",
        "| units | per clip | two utterances of one digit | of two digits |", "| --- | --- | --- | --- |",
        *(f"| {kind} | {v['units_per_clip']:.1f} | {v['same_digit']:.3f} | {v['other_digit']:.3f} |"
          for kind, v in separation.items()), "",
        "The voice encoder was trained on paired images (speech -> image above), so its units are weakly "
        "supervised, where Hsu et al.'s come from self-supervised HuBERT; the audio judge is a separate "
        f"network. The audio judge reads real test speech (unseen voices) with accuracy {judge_real:.3f}.", "",
        "Units -> speech, the vocoder's frames compared (real utterances spoken from their own units; "
        "spectral convergence against the real |STFT| with the true durations, lower is better; the oracle row "
        "inverts the real frames of that kind, the best a perfect frame predictor could do):", "",
        "| frames | split | audio judge reads the digit | spectral convergence | oracle spectral convergence |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {f}{' ← chosen' if f == chosen and split == 'val' else ''} | {split} | {v['judge_accuracy']:.3f} | "
          f"{v['spectral_convergence']:.3f} | {v['oracle_spectral_convergence']:.3f} |"
          for split, scores in (("val", vocoder_val), ("test", vocoder_test)) for f, v in scores.items()),
        "", f"The beams' length penalty (hypotheses ranked by log p / length^penalty) was chosen on validation by the "
        f"audio judge, over beams 3 and 5 and the seeds: {penalty:g}. Validation accuracy, mean over seeds: "
        + ", ".join(f"{k} {v:.3f}" for k, v in penalty_val.items()) + ".",
        "", f"Test split, {len(labels)} images (unseen), their speech by the chosen ({chosen}) vocoder. The image -> units "
        f"decoder was trained with {len(per_seed['greedy'])} seeds; each of its rows gives the mean over seeds "
        "(lowest–highest):", "",
        "| speech | audio judge reads the pictured digit | unit edit distance to real utterances of that digit | units |",
        "| --- | --- | --- | --- |",
        *(f"| {k} | {_cell(v['judge_accuracy'])}{_range(v)} | {v['unit_distance']:.3f} | {v['units']:.1f} |"
          for k, v in table.items()),
        "", f"Empty sequences (an end token first; no speech, counted as misses), over the {len(per_seed['greedy'])} seeds: "
        + ", ".join(f"{k.removeprefix('image -> units, ')} {v['empty']}" for k, v in table.items() if "empty" in v) + ".",
        "", "Each decoding against greedy, image by image: both speak every image from the same Griffin-Lim phases, so "
        "only the images where one is right and the other wrong tell them apart. The interval resamples the images "
        f"(a paired bootstrap; every image keeps its {len(per_seed['greedy'])} seeds). The last two columns count "
        f"(image, seed) pairs, {len(labels) * len(per_seed['greedy'])} in all:", "",
        "| decoding | − greedy, judge accuracy | 95% interval | right where greedy is wrong | wrong where greedy is right |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {name} | {d.difference:+.3f} | {d.low:+.3f} to {d.high:+.3f} | {d.only_a} | {d.only_b} |"
          for name, d in against_greedy.items()),
        "", "The unit edit distance is Levenshtein distance over the reference's length, averaged over the digit's "
        "real test utterances (their spoken units).", "",
        f"The decoder's targets are the spoken units: a clip's units between its leading and trailing silence "
        f"({whole_clip['spoken_units_per_clip']:.1f} of {whole_clip['units_per_clip']:.1f} per training clip; `avkit units "
        "encode`, 15 dB below the loudest frame). The silences are background noise whose units name its colour and "
        f"level, which no picture shows: unit {whole_clip['onset']} alone begins {whole_clip['onset_share']:.0%} of "
        "whole training clips. The same decoder trained on whole clips' units (seed 0, the same length penalty), on "
        "test, against whole clips' units of that digit:", "",
        f"| whole-clip targets | audio judge reads the pictured digit | unit edit distance | units | begins with unit {whole_clip['onset']} |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {k} | {v['judge_accuracy']:.3f} | {v['unit_distance']:.3f} | {v['units']:.1f} | {v['onset']:.3f} |"
          for k, v in whole_clip["test"].items()), "",
        "Rescored rows: every hypothesis of the beam is spoken, the voice encoder of speech -> image embeds it, and the "
        "one nearest the frozen image tower's embedding of the picture is kept (`avkit translate --rescore-with`). "
        "The control row speaks the greedy units 5 times (Griffin-Lim starts from random phases) and keeps the draw "
        "the voice encoder places nearest: what the rescored beams gain beyond it comes from the beam's other hypotheses. "
        "The voice encoder is not the audio judge, but it was trained on the same training speech and is nearly a "
        "digit recogniser itself: its frozen classifier, on its own prediction, reads the pictured digit in "
        f"{greedy_row['voice_encoder_accuracy']:.3f} of the greedy speech (the judge {greedy_row['judge_accuracy']:.3f}) and agrees with "
        f"the judge on {greedy_row['agreement']:.3f} of it; on the rescored beams' speech, "
        f"{rescored_row['voice_encoder_accuracy']:.3f} (beam 5) and {rescored_row['agreement']:.3f} agreement.", "",
        f"![attention over the image for each decoded unit ({SHOWN})]({figure.name})", "",
    ]  # fmt: skip
    checks = [(f"audio judge on real test speech ≥ {TARGETS['judge']}: {judge_real:.3f}", judge_real >= TARGETS["judge"])]
    by_decoding = {name: table[f"image -> units, {name}"]["judge_accuracy"] for name in DECODINGS if name != CONTROL}
    for name, acc in by_decoding.items():
        row = table[f"image -> units, {name}"]
        checks.append((f"image -> speech, {name}: the audio judge hears the pictured digit in {acc:.3f} of utterances, "
                       f"mean over seeds (lowest {row['judge_min']:.3f}; ≥ {TARGETS['image_to_speech']})",
                       acc >= TARGETS["image_to_speech"]))  # fmt: skip
    for name in (n for n in by_decoding if n != "greedy"):
        d = against_greedy[name]
        checks.append((f"{name} ({by_decoding[name]:.3f}) at least as good as greedy ({by_decoding['greedy']:.3f}), "
                       f"means over seeds (paired difference {d.difference:+.3f}, 95% interval {d.low:+.3f} to "
                       f"{d.high:+.3f})", by_decoding[name] >= by_decoding["greedy"]))  # fmt: skip
    data = {"judge": judge_real, "whole_clip": whole_clip, "unit_separation": separation, "length_penalty": penalty, "length_penalty_val": penalty_val, "vocoder_val": vocoder_val, "vocoder_test": vocoder_test, "chosen_vocoder": chosen,
            "test": table, "against_greedy": {name: d.as_dict() for name, d in against_greedy.items()},
            "units": {"k": units.k, **units.fitted_on}}  # fmt: skip
    return lines, data, checks


DIRECTIONS = ("speech-to-image", "image-to-speech")


def read_previous(path: Path) -> dict:
    """The last ``results.json``, whose blocks a one-direction run keeps ({} if there is none)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AvkitError(f"{path} is not readable JSON ({exc}); move it away to start the results afresh") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/digits"), help="AV-digits folder (built if missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/translation"), help="run directories go here")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"), help="Markdown file; its translation section is replaced")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="two epochs each: a smoke run, not the reported numbers")
    parser.add_argument("--direction", choices=["both", *DIRECTIONS], default="both",
                        help="judge one direction only; the other's last judged block (results.json) is kept (default both)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    judged = DIRECTIONS if args.direction == "both" else (args.direction,)
    results_file = args.out / "results.json"
    try:
        previous = read_previous(results_file)
        blocks: dict[str, dict] = {d: previous[d] for d in DIRECTIONS if d in previous and d not in judged}
        manifest = args.data / "manifest.jsonl"
        if not manifest.is_file():
            build_digits(args.data, DigitsConfig(seed=args.seed), show_progress=True)
        quick = ["optim.epochs=2"] if args.quick else []
        runs = Runs({}, {})

        def train_run(name: str, config: str, *overrides: str, data: Path = manifest) -> None:
            cfg = load_run_config(CONFIGS / config, [f"data.manifest={data}", *quick, f"out={args.out / name}", *overrides])
            result, _ = train_or_reuse(cfg, show_progress=True)
            runs.dirs[name], runs.seconds[name] = result.run_dir, run_seconds(result)

        seed = f"seed={args.seed}"
        train_run("classifier", "teacher.toml", seed)
        from_classifier = f"model.init.classifier.checkpoint={runs.dirs['classifier']}"
        train_run("image-judge", "image-judge.toml")
        train_run("audio-judge", "audio-judge.toml")
        train_run("decoder-deconv", "image-decoder.toml", seed, from_classifier)
        train_run("decoder-diffusion", "image-decoder-diffusion.toml", seed, from_classifier)
        train_run("speech-to-image", "speech-to-image.toml", seed, from_classifier,
                  f"model.init.deconv.checkpoint={runs.dirs['decoder-deconv']}",
                  f"model.init.diffusion.checkpoint={runs.dirs['decoder-diffusion']}")  # fmt: skip
        if "image-to-speech" in judged:  # units of the voice encoder's map; log-mel units for comparison
            voice = load_model(runs.dirs["speech-to-image"])
            units_file, units_manifest = args.out / "units.safetensors", args.out / "units.jsonl"
            units_timing = args.out / "units.timing.json"
            timing = json.loads(units_timing.read_text()) if units_timing.is_file() else {}
            # units fitted on this very voice encoder, with this k and seed, are reused
            units = reusable_units(units_file, UNITS_K, args.seed, voice) if "fit" in timing else None
            if units is None:
                stale = [d for d in args.out.glob("*") if d.name.startswith(("vocoder-", "image-to-speech", WHOLE_CLIP))]
                log.info("fitting speech units; runs trained on earlier units are removed: %s", [d.name for d in stale])
                for d in stale:
                    shutil.rmtree(d)
                units_manifest.unlink(missing_ok=True)  # encoded with the earlier units: a stopped refit must not reuse it
                units_timing.unlink(missing_ok=True)
                started = time.perf_counter()
                units = fit_units(manifest, UNITS_K, model=voice, tower="audio", checkpoint=str(runs.dirs["speech-to-image"]),
                                  seed=args.seed, show_progress=True)  # fmt: skip
                units.save(units_file)
                timing = {"fit": time.perf_counter() - started}
            if "encode" not in timing or not has_spoken_units(units_manifest):  # also a manifest from before spoken units
                started = time.perf_counter()
                encode_manifest(units, manifest, units_manifest, show_progress=True)
                timing["encode"] = time.perf_counter() - started
            atomic_write_json(units_timing, timing)
            runs.seconds["units (fit + encode)"] = timing["fit"] + timing["encode"]
            logmel_file = args.out / "units-logmel.safetensors"
            logmel = reusable_units(logmel_file, UNITS_K, args.seed)
            if logmel is None:
                logmel = fit_units(manifest, UNITS_K, seed=args.seed, show_progress=True)
                logmel.save(logmel_file)
            separation = {"voice encoder's map (used)": unit_separation(units, manifest),
                          "log-mel frames": unit_separation(logmel, manifest)}  # fmt: skip
            audio_judge = load_model(runs.dirs["audio-judge"])
            vocoder_val = {}
            for frames in VOCODER_FRAMES:
                train_run(f"vocoder-{frames}", "unit-vocoder.toml", seed, f"model.heads.vocoder.frames={frames}",
                          f"model.heads.vocoder.vocab={UNITS_K}", data=units_manifest)  # fmt: skip
                vocoder_val[frames] = vocoder_scores(load_model(runs.dirs[f"vocoder-{frames}"]), units_manifest, "val", audio_judge)
            chosen = max(VOCODER_FRAMES, key=lambda f: vocoder_val[f]["judge_accuracy"])
            for caption_seed in range(CAPTION_SEEDS):  # seed 0 is the run's own; more say how much the seed matters
                train_run("image-to-speech" + (f"-seed{caption_seed}" if caption_seed else ""), "image-to-speech.toml",
                          f"seed={args.seed + caption_seed}", from_classifier,
                          f"model.init.vocoder.checkpoint={runs.dirs[f'vocoder-{chosen}']}", f"model.heads.vocoder.frames={chosen}",
                          f"model.heads.vocoder.vocab={UNITS_K}", f"model.heads.caption.vocab={UNITS_K}", data=units_manifest)  # fmt: skip
            train_run(WHOLE_CLIP, "image-to-speech.toml", seed, from_classifier, "model.heads.caption.target=units",
                      f"model.init.vocoder.checkpoint={runs.dirs[f'vocoder-{chosen}']}", f"model.heads.vocoder.frames={chosen}",
                      f"model.heads.vocoder.vocab={UNITS_K}", f"model.heads.caption.vocab={UNITS_K}", data=units_manifest)  # fmt: skip

        for direction in judged:
            started = time.perf_counter()
            if direction == "speech-to-image":
                lines, data, checks = speech_to_image_report(runs, manifest, args.seed, args.results.parent,
                                                             steps=5 if args.quick else None)  # fmt: skip
            else:
                lines, data, checks = image_to_speech_report(runs, units_manifest, units, separation, vocoder_val, chosen,
                                                             args.seed, args.results.parent)  # fmt: skip
            blocks[direction] = {**data, "lines": lines, "checks": checks, "eval_seconds": time.perf_counter() - started,
                                 "commit": git_commit(ROOT)}  # fmt: skip
            atomic_write_json(results_file, {**previous, **blocks})  # a later failure keeps this direction's numbers
    except AvkitError as exc:
        print(f"translation: error: {exc}", file=sys.stderr)
        return 2

    ordered = [blocks[d] for d in DIRECTIONS if d in blocks]
    minutes = sum(runs.seconds.values()) / 60
    # speech -> image's runs train whatever is judged; image -> speech's only when it is judged
    timing = [(f"everything (judges, extra seeds and the ablation included) trains in ≤ {TARGETS['training_minutes']} min "
               f"in total: {minutes:.1f} min", minutes <= TARGETS["training_minutes"])] if "image-to-speech" in judged else []  # fmt: skip
    kept = [f"{d} (commit {(blocks[d]['commit'] or 'unknown')[:7]})" for d in DIRECTIONS if d in blocks and d not in judged]
    lines = ["## Cross-modal translation on AV-digits", "",
             "Judges were trained on real training data only, with their own architectures and seeds. Produced by "
             "`python experiments/translation.py`" + (" — **quick smoke run: not the reported numbers.**" if args.quick else ".")
             + (f" Kept from an earlier run: {', '.join(kept)}." if kept else ""), "",
             *(line for b in ordered for line in b["lines"]), "Targets (test):", "",
             *(f"- {what}: **{'met' if ok else 'not met'}**" for what, ok in [*(c for b in ordered for c in b["checks"]), *timing]), "",
             "Training steps, s: " + ", ".join(f"{k} {v:.0f}" for k, v in runs.seconds.items())
             + f" (total {minutes:.1f} min; the translation models alone, without the judges, "
             f"the extra caption seeds and the whole-clip ablation, {pipeline_seconds(runs.seconds) / 60:.1f} min); evaluation "
             + ", ".join(f"{d} {blocks[d]['eval_seconds']:.0f} s" for d in DIRECTIONS if d in blocks) + "."]  # fmt: skip
    text = "\n".join(lines)
    update_section(args.results, "translation", text)
    atomic_write_json(results_file, {**blocks, "seconds": runs.seconds, "commit": git_commit(ROOT),
                                     "environment": environment_info(args.seed)})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
