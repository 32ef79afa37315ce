"""Image -> speech through discrete units: Show-Attend-Tell decodes units, a unit vocoder speaks them.

    image (B, 3, H, W) ─▶ image tower ─▶ map ─▶ caption head (beam search) ─▶ units ─▶ unit_vocoder ─▶ waveform

The model holds a ``caption`` head on an image tower and a ``unit_vocoder`` head
(copied, frozen, from a vocoder run trained on the same units).

Rescoring (optional): a *matcher*, any model that embeds images and audio in one space
(a speech-to-image run's voice encoder and the image tower it regresses, or a contrastive
run), hears each hypothesis of the beam spoken and keeps the one whose speech it places
nearest the image, as DALL·E keeps the images CLIP ranks first. The beam proposes; the
matcher, trained on real speech, judges what the vocoder made of each proposal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avkit.audio.io import save_audio
from avkit.data.batch import Batch
from avkit.errors import ConfigError
from avkit.evaluation.localization import MapGrid
from avkit.models import AVModel
from avkit.models.heads.caption import CaptionHead
from avkit.models.heads.unit_vocoder import UnitVocoderHead


@dataclass
class Spoken:
    """One image's speech: its ``units``, the ``attention (len(units), h, w)`` of each, the ``waveform (T,)``;
    ``match``: with a matcher, the cosine of its embeddings of this speech and the image (else None);
    ``grid``: where the attention's cells sit on the image (None: they tile it)."""

    units: list[int]
    attention: Tensor
    waveform: Tensor
    sample_rate: int
    match: float | None = None
    grid: MapGrid | None = None


def save_speech(path: str | Path, spoken: Spoken, peak: float = 0.9) -> None:
    """Write ``spoken``'s waveform to ``path``; Griffin-Lim may overshoot, so a peak above ``peak`` is scaled down to it."""
    wav = spoken.waveform
    top = float(wav.abs().max()) if len(wav) else 0.0
    save_audio(path, wav * (peak / top) if top > peak else wav, spoken.sample_rate)


def image_to_speech_heads(model: AVModel) -> tuple[CaptionHead, UnitVocoderHead]:
    """The model's caption head on an image tower, and its unit vocoder.

    Raises:
        ConfigError: the model lacks either (say what it has).
    """
    captions = [h for h in model.heads.values() if isinstance(h, CaptionHead)]
    vocoders = [h for h in model.heads.values() if isinstance(h, UnitVocoderHead)]
    if len(captions) != 1 or len(vocoders) != 1:
        raise ConfigError(f"image -> speech needs one caption head and one unit_vocoder head; this model's heads are "
                          f"{[f'{n} ({type(h).__name__})' for n, h in model.heads.items()]}")  # fmt: skip
    caption, vocoder = captions[0], vocoders[0]
    if caption.decoder.vocab != vocoder.vocoder.vocab:
        raise ConfigError(f"the caption head emits {caption.decoder.vocab} units, the vocoder speaks {vocoder.vocoder.vocab}")
    return caption, vocoder


def matcher_towers(matcher: AVModel, model: AVModel, image_tower: str, sample_rate: int) -> tuple[str, str]:
    """The matcher's image and audio towers, checked to read the caption model's image tensors and the vocoder's speech.

    Raises:
        ConfigError: the matcher does not embed both, or reads images or audio otherwise (say how).
    """
    needs = "rescoring needs a matcher that embeds images and audio in one space (a speech-to-image or contrastive run)"
    try:
        towers = matcher.tower_for("image"), matcher.tower_for("audio")
    except ConfigError:
        raise ConfigError(f"{needs}; the matcher embeds {matcher.embedding_modalities() or 'nothing'}") from None
    heads = [matcher.embedding_head(t) for t in towers]
    if heads[0] is not heads[1]:
        raise ConfigError(f"{needs}; the matcher embeds images and audio with two heads, "
                          f"{type(heads[0]).__name__} and {type(heads[1]).__name__}, in two spaces")  # fmt: skip
    ours, theirs = model.pipelines()[image_tower].settings, matcher.pipelines()[towers[0]].settings
    if ours != theirs:
        raise ConfigError(f"rescoring: the matcher's image tower reads images as {theirs}, this model's as {ours}; "
                          "the matcher must take the same image tensors")  # fmt: skip
    rate = matcher.pipelines()[towers[1]].settings.sample_rate
    if rate != sample_rate:
        raise ConfigError(f"rescoring: the matcher hears audio at {rate} Hz, the vocoder speaks at {sample_rate} Hz")
    return towers


def rescoring_towers(matcher: AVModel, model: AVModel, batch: Batch) -> tuple[str, str]:
    """The matcher's image and audio towers, to rescore the hypotheses for ``batch``'s images (:func:`matcher_towers`).

    Raises:
        ConfigError: as :func:`matcher_towers`, or the batch holds precomputed image features, not the images.
    """
    caption, vocoder = image_to_speech_heads(model)
    towers = matcher_towers(matcher, model, caption.towers[0], vocoder.sample_rate)
    if caption.towers[0] in batch.precomputed:
        raise ConfigError(f"rescoring: the batch holds precomputed {caption.towers[0]} features; the matcher needs the images")
    return towers


def embed_speech(matcher: AVModel, tower: str, waveforms: list[Tensor]) -> Tensor:
    """Unit-norm embeddings ``(K, D)`` of waveforms of any length, each through ``tower``'s evaluation pipeline."""
    pipe = matcher.pipelines()[tower]
    x, lengths = pipe.collate([pipe(w)[0] for w in waveforms])
    return matcher.embed(tower, x, lengths)


def nearest_speech(matcher: AVModel, tower: str, waveforms: list[Tensor], image: Tensor) -> tuple[int, float]:
    """``(index, cosine)`` of the waveform whose ``tower`` embedding is nearest ``image (D,)``, a unit-norm image embedding."""
    cosines = embed_speech(matcher, tower, waveforms) @ image
    return int(cosines.argmax()), float(cosines.max())


@torch.no_grad()
def speak_hypotheses(model: AVModel, batch: Batch, spoken: int | None = None, phase_seed: int | None = None,
                     **decoding: float) -> list[list[Spoken]]:  # fmt: skip
    """The beam's hypotheses for each of the batch's images, best log p first, each spoken by the vocoder
    (``spoken``: only the first that many). ``phase_seed``: image ``i`` of the batch is spoken from
    Griffin-Lim phases seeded by ``phase_seed + i``, so equal units give equal speech whatever the
    decoding (None: the global generator). ``decoding``: ``beam`` (1: greedy), ``max_length``, ``length_penalty``."""
    caption, vocoder = image_to_speech_heads(model)
    tower = caption.towers[0]
    was_training = model.training
    model.eval()
    try:
        output = model.tower_output(tower, batch)
        h, w = output.feature_map.shape[-2:]
        grid = MapGrid.of(model.towers[tower].feature_info.map())
        seeds = (None if phase_seed is None else phase_seed + i for i in range(len(batch)))
        return [[Spoken(d.tokens, d.attention.view(-1, h, w), vocoder.speak(d.tokens, seed), vocoder.sample_rate, grid=grid)
                 for d in hypotheses[:spoken]] for hypotheses, seed in zip(caption.nbest(output, **decoding), seeds)]  # fmt: skip
    finally:
        model.train(was_training)


@torch.no_grad()
def nearest_hypotheses(matcher: AVModel, model: AVModel, batch: Batch, hypotheses: list[list[Spoken]]) -> list[Spoken]:
    """For each image of the batch, the hypothesis whose speech ``matcher`` embeds nearest the image, with
    that cosine as its ``match`` (a hypothesis with no units is never chosen over one with some)."""
    image_tower, audio_tower = rescoring_towers(matcher, model, batch)
    images = matcher.embed(image_tower, batch.inputs[image_to_speech_heads(model)[0].towers[0]])
    chosen = []
    for said, image in zip(hypotheses, images, strict=True):
        voiced = [k for k, one in enumerate(said) if len(one.waveform)]
        if not voiced:
            chosen.append(said[0])
            continue
        nearest, match = nearest_speech(matcher, audio_tower, [said[k].waveform for k in voiced], image)
        chosen.append(dataclasses.replace(said[voiced[nearest]], match=match))
    return chosen


def image_to_speech(model: AVModel, batch: Batch, matcher: AVModel | None = None, **decoding: float) -> list[Spoken]:
    """Speech for the batch's images. ``decoding``: ``beam`` (1: greedy), ``max_length``, ``length_penalty``.

    Without a ``matcher`` each image gets the beam's best hypothesis; with one, every hypothesis is
    spoken and the one the matcher hears nearest the image is kept (:func:`nearest_hypotheses`).
    """
    if matcher is None:
        return [said[0] for said in speak_hypotheses(model, batch, spoken=1, **decoding)]
    rescoring_towers(matcher, model, batch)  # refused before any decoding
    return nearest_hypotheses(matcher, model, batch, speak_hypotheses(model, batch, **decoding))


def image_to_speech_files(model: AVModel, images: Sequence[str | Path], matcher: AVModel | None = None,
                          **decoding: float) -> list[Spoken]:  # fmt: skip
    """Speech for image files, through the image tower's evaluation pipeline (``matcher``: as for :func:`image_to_speech`).

    Raises:
        MediaError: a file that does not decode as an image, naming it.
    """
    caption, _ = image_to_speech_heads(model)
    tower = caption.towers[0]
    pipe = model.pipelines()[tower]
    x, _ = pipe.collate([pipe.load_tensor(p) for p in images])
    return image_to_speech(model, Batch.of(tower, x, ids=[str(p) for p in images]), matcher, **decoding)
