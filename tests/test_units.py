"""Image -> speech parts: speech units, token-sequence batches, Show-Attend-Tell and its beam search, the unit vocoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from avkit.cli import main as cli
from avkit.config import from_dict
from avkit.data.batch import Batch
from avkit.data.dataset import ManifestDataset, ordered_loader
from avkit.errors import ArtifactError, ConfigError
from avkit.evaluation.sequences import edit_distance
from avkit.modalities import get_modality
from avkit.models import load_model
from avkit.models.sequence_decoder import ShowAttendTell
from avkit.train import RunConfig, train
from avkit.translation import SpeechUnits, image_to_speech_files, image_to_speech_heads
from avkit.translation.units import (
    collapse,
    front_end_durations,
    has_spoken_units,
    reusable_units,
    speech_span,
    spoken_part,
)
from tests.conftest import tiny_config


def test_edit_distance_and_collapse_on_hand_made_sequences():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([], [4, 5]) == 2 and edit_distance([4, 5], []) == 2
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([1, 2, 3], [3, 2, 1]) == 2
    assert collapse(torch.tensor([7, 7, 7, 2, 2, 7, 9])) == ([7, 2, 7, 9], [3, 2, 1, 1])
    assert collapse(torch.tensor([], dtype=torch.long)) == ([], [])
    hop = {"sample_rate": 16000, "hop_length": 160}  # 100 front-end frames per second
    assert front_end_durations([3, 1, 2], 100.0, hop, 16000) == [3, 1, 2]  # already front-end frames
    # a map at 6.25 cells per second (stride 16): boundaries at cells 3 and 4 -> frames 48 and 64; the last runs to 101
    assert front_end_durations([3, 1, 2], 6.25, hop, 16000) == [48, 16, 37]
    assert front_end_durations([6, 1], 6.25, hop, 8000) == [51, 0]  # a map padded past a half-second clip
    units = SpeechUnits(torch.zeros(3, 2), torch.zeros(2), torch.ones(2), {"kind": "tower", "settings": hop,
                        "frames_per_second": 6.25})  # fmt: skip
    units.frames = lambda wav: torch.zeros(6, 2)  # six map cells ...
    units.assign = lambda frames: torch.tensor([1, 1, 1, 2, 0, 0])
    assert units.encode(torch.zeros(4000)) == ([1], [26])  # ... of which a quarter-second clip fills under two


def test_units_are_reused_only_if_fitted_with_the_same_k_and_seed_and_whole(tmp_path):
    features = {"kind": "logmel", "settings": {"sample_rate": 16000, "hop_length": 160}, "frames_per_second": 100.0}
    path = tmp_path / "units.safetensors"
    assert reusable_units(path, 3, seed=0) is None  # none yet
    SpeechUnits(torch.randn(3, 2), torch.zeros(2), torch.ones(2), features, {"seed": 0}).save(path)
    assert reusable_units(path, 3, seed=0).k == 3
    assert reusable_units(path, 4, seed=0) is None and reusable_units(path, 3, seed=1) is None
    path.write_bytes(path.read_bytes()[:-8])  # damaged
    assert reusable_units(path, 3, seed=0) is None
    SpeechUnits(torch.randn(3, 2), torch.zeros(2), torch.ones(2), features).save(path)  # from before seeds were recorded
    assert reusable_units(path, 3, seed=0) is None


def _markov(decoder: ShowAttendTell, table: dict[int, dict[int, float]]):
    """A step that ignores the image: next-token probabilities depend on the previous token only."""

    def step(features, projected, prev, h, c):
        logits = torch.full((len(prev), decoder.vocab + 1), -1e9)
        for i, p in enumerate(prev.tolist()):
            for token, prob in table[p].items():
                logits[i, token] = math.log(prob)
        return logits, torch.full((len(prev), features.shape[1]), 1 / features.shape[1]), h, c

    return step


def test_beam_search_finds_the_likelier_sequence_that_greedy_misses(monkeypatch):
    dec = ShowAttendTell(feature_dim=4, vocab=3)
    eos, bos = dec.eos, dec.bos
    table = {bos: {0: 0.6, 1: 0.4}, 0: {2: 0.4, eos: 0.3, 0: 0.15, 1: 0.15}, 1: {eos: 0.9, 0: 0.1}, 2: {eos: 1.0}}
    monkeypatch.setattr(dec, "step", _markov(dec, table))
    features = torch.zeros(1, 5, 4)
    greedy = dec.decode(features, beam=1, length_penalty=0)[0]
    beam = dec.decode(features, beam=2, length_penalty=0)[0]
    assert greedy.tokens == [0, 2] and greedy.score == pytest.approx(math.log(0.6 * 0.4))
    assert beam.tokens == [1] and beam.score == pytest.approx(math.log(0.4 * 0.9))
    assert beam.attention.shape == (1, 5)
    normalised = dec.decode(features, beam=2, length_penalty=1.0)[0]  # per token: [1] 0.36^(1/2) vs [0, 2] 0.24^(1/3)
    assert normalised.tokens == [0, 2]
    hypotheses = dec.nbest(features, beam=2, length_penalty=0)[0]  # the beam's finished hypotheses, best first
    assert [d.tokens for d in hypotheses] == [[1], [0, 2]]
    assert [d.score for d in hypotheses] == pytest.approx([math.log(0.36), math.log(0.24)])
    assert [d.tokens for d in dec.nbest(features, beam=1, length_penalty=0)[0]] == [[0, 2]]  # greedy: one


def test_decoding_stops_at_the_length_limit_and_attention_is_a_distribution():
    torch.manual_seed(0)
    dec = ShowAttendTell(feature_dim=8, vocab=5, embed_dim=8, hidden_dim=16, attention_dim=8).eval()
    with torch.no_grad():
        dec.out.bias[dec.eos] = -100.0  # never ends by itself
    out = dec.decode(torch.randn(2, 6, 8), beam=3, max_length=7)
    assert all(len(d.tokens) == 7 and d.attention.shape == (7, 6) for d in out)
    assert torch.allclose(out[0].attention.sum(-1), torch.ones(7))


def test_teacher_forcing_targets_end_with_the_end_token_and_padding_is_ignored():
    dec = ShowAttendTell(feature_dim=4, vocab=6, embed_dim=8, hidden_dim=8, attention_dim=8)
    targets = torch.tensor([[1, 2, 3], [4, -1, -1]])
    assert dec.targets_with_end(targets).tolist() == [[1, 2, 3, 6], [4, 6, -1, -1]]
    logits, alphas = dec(torch.randn(2, 5, 4), targets)
    assert logits.shape == (2, 4, 7) and alphas.shape == (2, 4, 5)
    assert alphas[1, 2:].abs().sum() == 0  # no attention after the end
    ce, penalty = dec.losses(torch.randn(2, 5, 4), targets)
    assert ce.ndim == 0 and penalty >= 0


@pytest.fixture(scope="module")
def unit_manifest(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("units")
    args = ["units", "fit", str(small_digits / "manifest.jsonl"), "--out", str(out / "units.safetensors"), "--k", "12"]
    assert cli(args) == 0
    assert cli(["units", "encode", str(small_digits / "manifest.jsonl"), "--units", str(out / "units.safetensors"),
                "--out", str(out / "manifest.jsonl")]) == 0  # fmt: skip
    return out / "manifest.jsonl"


def test_units_fit_and_encode_write_sequences_that_add_up_to_the_clip(unit_manifest, small_digits, capsys):
    units = SpeechUnits.load(unit_manifest.parent / "units.safetensors")
    assert units.k == 12 and units.frames_per_second == 100 and units.fitted_on["split"] == "train"
    lines = [json.loads(x) for x in unit_manifest.read_text().splitlines()]
    assert len(lines) == len((small_digits / "manifest.jsonl").read_text().splitlines())
    for line in lines[:5]:
        seq, dur = line["units"], line["unit_durations"]
        assert len(seq) == len(dur) and all(a != b for a, b in zip(seq, seq[1:], strict=False))
        assert all(0 <= u < 12 for u in seq) and sum(dur) == 101  # 1 s at hop 160, centred frames
        assert Path(line["audio"]).is_absolute() and Path(line["image"]).is_file()
        spoken, n = line["spoken_units"], len(line["spoken_units"])
        assert n >= 1 and any(seq[i : i + n] == spoken for i in range(len(seq) - n + 1))  # the silences cut off the ends
    assert sum(len(x["spoken_units"]) for x in lines) < sum(len(x["units"]) for x in lines)  # the clips' silences are cut off
    assert has_spoken_units(unit_manifest) and not has_spoken_units(small_digits / "manifest.jsonl")
    older = unit_manifest.parent / "encoded-before-spoken-units.jsonl"
    older.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "spoken_units"}) + "\n" for x in lines))
    assert not has_spoken_units(older)
    with pytest.raises(ArtifactError, match="not a units file written by avkit units fit"):
        SpeechUnits.load(_checkpoint_like(unit_manifest))


def test_the_spoken_part_is_the_units_between_the_leading_and_trailing_silence():
    t = torch.arange(16000) / 16000
    wav = 0.001 * torch.randn(16000, generator=torch.Generator().manual_seed(0))  # 1 s of quiet noise
    wav[4800:9600] += 0.5 * torch.sin(2 * math.pi * 440 * t[4800:9600])  # a tone from 0.3 s to 0.6 s
    settings = {"win_length": 400, "hop_length": 160}
    start, end = speech_span(wav, settings, top_db=15)
    assert 28 <= start <= 30 and 61 <= end <= 63  # frames of 10 ms; a frame's 25 ms window reaches a little past its centre
    assert speech_span(wav, settings, top_db=80) == (0, 101)  # the noise lies 50 dB down: nothing is silent
    wav[9600:15800] += 0.5 * torch.sin(2 * math.pi * 440 * t[9600:15800])  # the tone runs on to 0.9875 s
    assert speech_span(wav, settings, top_db=15)[1] == 100  # frame 99's window reaches it, frame 100's (the last) does not
    assert speech_span(torch.zeros(0), settings) == (0, 0) and spoken_part([], [], (0, 0)) == []
    units, durations = [1, 2, 3, 4, 5], [20, 10, 30, 20, 21]  # frames [0, 20), [20, 30), [30, 60), [60, 80), [80, 101)
    assert spoken_part(units, durations, (29, 62)) == [2, 3, 4]  # a unit touching the span stays
    assert spoken_part(units, durations, (0, 101)) == units and spoken_part(units, durations, (20, 30)) == [2]


def _checkpoint_like(unit_manifest: Path) -> Path:
    from avkit.artifacts import save_artifact

    path = unit_manifest.parent / "not-units.safetensors"
    save_artifact(path, "embeddings", {"vectors": torch.zeros(2, 2)}, {"ids": ["a", "b"]})
    return path


def test_a_field_of_integer_lists_reaches_the_batch_as_a_padded_sequence(unit_manifest):
    ds = ManifestDataset(unit_manifest, {"image": get_modality("image").make_pipeline({"size": 16})},
                         split="train", fields=["units", "unit_durations"])  # fmt: skip
    batch = next(iter(ordered_loader(ds, 8)))
    seq = batch.sequences["units"]
    assert seq.dtype == torch.long and seq.shape[0] == 8 and "units" not in batch.fields
    lengths = (seq >= 0).sum(1)
    assert bool(((seq >= 0) == (torch.arange(seq.shape[1])[None] < lengths[:, None])).all())  # padding at the end


@pytest.fixture(scope="module")
def image_to_speech_run(unit_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A unit vocoder (audio alone), then a caption head with that vocoder copied in, frozen."""
    root = tmp_path_factory.mktemp("i2s")
    audio = {"encoder": {"name": "logmel_cnn", "width": 4}}
    vocoder = {"kind": "unit_vocoder", "vocab": 12, "hidden": 16, "layers": 1, "griffin_lim_iterations": 4}
    train(from_dict(RunConfig, tiny_config(unit_manifest, root / "vocoder", model={
        "towers": {"audio": audio}, "heads": {"vocoder": vocoder}})))  # fmt: skip
    train(from_dict(RunConfig, tiny_config(unit_manifest, root / "caption", model={
        "towers": {"image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}, "preprocess": {"size": 16}},
                   "audio": audio},
        "heads": {"caption": {"vocab": 12, "hidden_dim": 16, "embed_dim": 8, "attention_dim": 8, "max_length": 10},
                  "vocoder": vocoder},
        "init": {"vocoder": {"checkpoint": str(root / "vocoder"), "parts": {"heads.vocoder": "heads.vocoder"}}}})))  # fmt: skip
    return root / "caption"


def test_the_vocoder_trains_on_audio_alone_without_running_the_audio_encoder(image_to_speech_run):
    vocoder_run = image_to_speech_run.parent / "vocoder"
    model = load_model(vocoder_run)
    assert model.encoded == [] and model.trained_heads() == ["vocoder"]
    rows = [json.loads(r) for r in (vocoder_run / "metrics.jsonl").read_text().splitlines()]
    assert {"vocoder/frames", "vocoder/duration"} <= set(rows[0]) and math.isfinite(rows[0]["loss"])
    wav = model.heads["vocoder"].speak([1, 2, 3])
    assert wav.ndim == 1 and len(wav) % 160 == 0 and len(wav) >= (3 - 1) * 160  # (frames - 1) hops, one frame per unit at least
    with torch.no_grad():
        model.heads["vocoder"].vocoder.duration.bias.fill_(-10.0)  # every unit one frame: a one-unit sequence is one frame
    assert len(model.heads["vocoder"].speak([1])) >= 512 // 2  # padded with silence past Griffin-Lim's half window


def test_a_phase_seed_makes_speech_repeatable_and_leaves_the_global_generator_alone(image_to_speech_run):
    vocoder = load_model(image_to_speech_run.parent / "vocoder").heads["vocoder"]
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    a, b, c = vocoder.speak([1, 2, 3], phase_seed=7), vocoder.speak([1, 2, 3], phase_seed=7), vocoder.speak([1, 2, 3], phase_seed=8)
    assert torch.equal(torch.rand(3), expected_next)  # the seeded draws did not consume the global generator
    assert torch.equal(a, b) and not torch.equal(a, c)  # Griffin-Lim's initial phases come from the seed
    assert not torch.equal(vocoder.speak([1, 2, 3]), vocoder.speak([1, 2, 3]))  # without one: fresh phases each time


def test_image_to_speech_decodes_units_with_attention_and_speaks_them(image_to_speech_run, small_digits):
    model = load_model(image_to_speech_run)
    assert model.trained_heads() == ["caption"]
    image = sorted((small_digits / "images").glob("*.png"))[0]
    spoken = image_to_speech_files(model, [image], beam=3)[0]
    assert 1 <= len(spoken.units) <= 10 and all(0 <= u < 12 for u in spoken.units)
    assert spoken.attention.shape[0] == len(spoken.units) and spoken.waveform.ndim == 1 and spoken.sample_rate == 16000
    with pytest.raises(ConfigError, match="decoding options"):
        image_to_speech_files(model, [image], temperature=2)


def test_a_phase_seed_pairs_decodings_by_the_image(image_to_speech_run, small_digits):
    """Image i is spoken from phases seeded by phase_seed + i: equal units give equal speech whatever the
    decoding, and the seed follows the image, not the call."""
    model = load_model(image_to_speech_run)
    _, vocoder = image_to_speech_heads(model)
    images = sorted((small_digits / "images").glob("*.png"))[:3]
    greedy = image_to_speech_files(model, images, beam=1, phase_seed=100)
    beams = image_to_speech_files(model, images, beam=3, phase_seed=100)
    for g, b in zip(greedy, beams, strict=True):
        assert torch.equal(g.waveform, b.waveform) == (g.units == b.units)
    later = image_to_speech_files(model, images[1:], beam=1, phase_seed=101)  # image 1 first, with image 1's seed
    assert torch.equal(later[0].waveform, greedy[1].waveform)
    assert torch.equal(greedy[2].waveform, vocoder.speak(greedy[2].units, phase_seed=102))


@pytest.fixture(scope="module")
def matcher_run(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny contrastive run that reads images as the image-to-speech run does (16 px)."""
    out = tmp_path_factory.mktemp("matcher") / "contrastive"
    train(from_dict(RunConfig, tiny_config(small_digits / "manifest.jsonl", out, **{"model.towers.image.preprocess": {"size": 16}})))
    return out


def test_rescoring_keeps_the_hypothesis_whose_speech_the_matcher_places_nearest_the_image(image_to_speech_run, matcher_run, small_digits,
                                                                                         tmp_path, capsys):  # fmt: skip
    from avkit.translation.image_to_speech import embed_speech

    model, matcher = load_model(image_to_speech_run), load_model(matcher_run)
    caption, vocoder = image_to_speech_heads(model)
    images = sorted((small_digits / "images").glob("*.png"))[:3]
    torch.manual_seed(0)  # Griffin-Lim's random phases: the same seed speaks the same waveforms below
    spoken = image_to_speech_files(model, images, matcher, beam=4)
    torch.manual_seed(0)
    pipe = model.pipelines()["image"]
    x, _ = pipe.collate([pipe.load_tensor(p) for p in images])
    beams = caption.nbest(model.tower_output("image", Batch.of("image", x)), beam=4)
    image_embeddings = matcher.embed("image", x)
    for one, hypotheses, image in zip(spoken, beams, image_embeddings, strict=True):
        cosines = embed_speech(matcher, "audio", [vocoder.speak(d.tokens) for d in hypotheses]) @ image
        assert len(hypotheses) >= 2 and one.units == hypotheses[int(cosines.argmax())].tokens
        assert one.match == pytest.approx(float(cosines.max()), abs=1e-5)
    assert image_to_speech_files(model, images[:1], beam=4)[0].match is None  # no matcher: the beam's best
    out = tmp_path / "speech.wav"
    args = ["translate", "--checkpoint", str(image_to_speech_run), "--image", str(images[0]), "--out", str(out)]
    assert cli([*args, "--beam", "4", "--rescore-with", str(matcher_run)]) == 0
    assert f"chosen by {matcher_run} among the beam's hypotheses: cosine" in capsys.readouterr().out and out.is_file()


def test_rescoring_follows_the_matcher_past_the_beams_best_and_never_keeps_an_empty_hypothesis(image_to_speech_run, matcher_run,
                                                                                                  small_digits, monkeypatch):  # fmt: skip
    import importlib

    from avkit.models.heads.caption import CaptionHead
    from avkit.models.sequence_decoder import Decoded

    def beam_of_three(self, output, **options):  # best first: no units at all, then [1, 2], then [3]
        n = output.feature_map[0, 0].numel()
        return [[Decoded([], torch.zeros(0, n), -0.1), Decoded([1, 2], torch.full((2, n), 1 / n), -0.5),
                 Decoded([3], torch.full((1, n), 1 / n), -0.9)] for _ in range(len(output.feature_map))]  # fmt: skip

    i2s = importlib.import_module("avkit.translation.image_to_speech")  # the module (the package exports a function of that name)
    model, matcher = load_model(image_to_speech_run), load_model(matcher_run)
    image = sorted((small_digits / "images").glob("*.png"))[0]
    monkeypatch.setattr(CaptionHead, "nbest", beam_of_three)
    along = torch.zeros(1, 16)
    along[0, 0] = 1.0
    monkeypatch.setattr(matcher, "embed", lambda tower, x, lengths=None: along.expand(len(x), -1))  # every image
    assert image_to_speech_files(model, [image])[0].units == []  # no matcher: the beam's best, empty as it is
    for nearest, units in ((-1, [3]), (0, [1, 2])):  # the matcher places the last, then the first voiced one nearest
        def speech(matcher, tower, waveforms, nearest=nearest):
            assert len(waveforms) == 2  # the empty hypothesis is never spoken to the matcher
            rows = [-along] * len(waveforms)
            rows[nearest] = along
            return torch.cat(rows)

        monkeypatch.setattr(i2s, "embed_speech", speech)
        spoken = image_to_speech_files(model, [image], matcher, beam=3)[0]
        assert spoken.units == units and spoken.match == pytest.approx(1.0) and len(spoken.waveform) > 0


def test_a_matcher_that_cannot_score_the_speech_against_the_image_is_refused(image_to_speech_run, trained_run, small_digits, tmp_path, capsys):
    model = load_model(image_to_speech_run)
    image = sorted((small_digits / "images").glob("*.png"))[0]
    with pytest.raises(ConfigError, match="the matcher's image tower reads images as .*size=32.*this model's as .*size=16"):
        image_to_speech_files(model, [image], load_model(trained_run))  # 32-px images, the caption model's are 16
    with pytest.raises(ConfigError, match="a matcher that embeds images and audio in one space .*the matcher embeds nothing"):
        image_to_speech_files(model, [image], load_model(image_to_speech_run.parent / "vocoder"))
    wav = sorted((small_digits / "audio").glob("*.wav"))[0]
    args = ["translate", "--checkpoint", str(image_to_speech_run), "--audio", str(wav), "--out", str(tmp_path / "p.png")]
    assert cli([*args, "--rescore-with", str(trained_run)]) == 2
    assert "--rescore-with chooses among spoken hypotheses" in capsys.readouterr().err


def test_a_model_without_the_heads_is_told_what_image_to_speech_needs(trained_run):
    with pytest.raises(ConfigError, match="one caption head and one unit_vocoder head"):
        image_to_speech_heads(load_model(trained_run))


def test_translate_an_image_into_speech_writes_the_sound_and_the_attention(image_to_speech_run, small_digits, tmp_path, capsys):
    from avkit.audio.io import read_audio

    image = sorted((small_digits / "images").glob("*.png"))[0]
    out, picture = tmp_path / "speech.wav", tmp_path / "attention.png"
    args = ["translate", "--checkpoint", str(image_to_speech_run), "--image", str(image), "--out", str(out)]
    assert cli([*args, "--beam", "2", "--attention", str(picture)]) == 0
    printed = capsys.readouterr().out
    wav, rate = read_audio(out)
    assert rate == 16000 and len(wav) > 0 and float(abs(wav).max()) <= 0.9 + 1e-3 and picture.stat().st_size > 0
    assert printed.startswith("units: ") and f"wrote {out}" in printed and "chosen by" not in printed
    for extra, message in ((["--out", str(tmp_path / "speech.png")], "an audio file"),
                           (["--audio", str(image)], "one of them")):  # fmt: skip
        assert cli([*args, *extra]) == 2
        assert message in capsys.readouterr().err
    wav = sorted((small_digits / "audio").glob("*.wav"))[0]  # the other direction: this run cannot draw
    assert cli(["translate", "--checkpoint", str(image_to_speech_run), "--audio", str(wav), "--out", str(tmp_path / "p.png")]) == 2
    assert "speech -> image needs one regress_embedding head" in capsys.readouterr().err


def test_translate_passes_the_beam_and_its_length_penalty_to_the_decoder(image_to_speech_run, small_digits, tmp_path,
                                                                         capsys, monkeypatch):  # fmt: skip
    import avkit.translation

    seen = []
    real = avkit.translation.image_to_speech_files

    def recording(model, images, matcher=None, **decoding):
        seen.append(decoding)
        return real(model, images, matcher, **decoding)

    monkeypatch.setattr(avkit.translation, "image_to_speech_files", recording)
    image = sorted((small_digits / "images").glob("*.png"))[0]
    args = ["translate", "--checkpoint", str(image_to_speech_run), "--image", str(image), "--out", str(tmp_path / "s.wav")]
    assert cli([*args, "--beam", "3", "--length-penalty", "2.5"]) == 0
    assert cli([*args, "--beam", "3", "--length-penalty", "0"]) == 0
    assert cli(args) == 0
    assert seen == [{"beam": 3, "length_penalty": 2.5}, {"beam": 3, "length_penalty": 0.0}, {}]  # none: the head's own
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse refuses it and says why
        cli([*args, "--length-penalty", "-1"])
    assert "a number >= 0, got '-1'" in capsys.readouterr().err


def test_an_empty_unit_sequence_is_reported_and_no_sound_is_written(image_to_speech_run, small_digits, tmp_path, capsys, monkeypatch):
    from avkit.models.heads.caption import CaptionHead
    from avkit.models.sequence_decoder import Decoded

    def ends_at_once(self, output, **options):  # beam search whose only hypothesis is the end token alone
        return [[Decoded([], torch.zeros(0, output.feature_map[0, 0].numel()), -0.1)] for _ in range(len(output.feature_map))]

    monkeypatch.setattr(CaptionHead, "nbest", ends_at_once)
    model = load_model(image_to_speech_run)
    image = sorted((small_digits / "images").glob("*.png"))[0]
    spoken = image_to_speech_files(model, [image])[0]
    assert spoken.units == [] and len(spoken.waveform) == 0 and spoken.attention.shape[0] == 0
    out = tmp_path / "silence.wav"
    assert cli(["translate", "--checkpoint", str(image_to_speech_run), "--image", str(image), "--out", str(out)]) == 1
    assert "emitted no units" in capsys.readouterr().err and not out.exists()


def test_units_of_a_tower_need_that_run_and_k_must_fit_the_frames(small_digits, trained_run, tmp_path, capsys):
    manifest = str(small_digits / "manifest.jsonl")
    out = tmp_path / "tower-units.safetensors"
    assert cli(["units", "fit", manifest, "--out", str(out), "--k", "8", "--checkpoint", str(trained_run)]) == 0
    assert "8 units of tower frames" in capsys.readouterr().out
    assert cli(["units", "encode", manifest, "--units", str(out), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "load that run's model with them" in capsys.readouterr().err
    assert cli(["units", "encode", manifest, "--units", str(out), "--out", str(tmp_path / "m.jsonl"),
                "--checkpoint", str(trained_run)]) == 0  # fmt: skip
    assert " between the silences" in capsys.readouterr().out
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert all(sum(x["unit_durations"]) == 101 for x in lines)  # counted in front-end frames, as a vocoder needs
    assert cli(["units", "fit", manifest, "--out", str(tmp_path / "u.safetensors"), "--k", "100000"]) == 2
    assert "k must lie in [2," in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses it and says why
        cli(["units", "encode", manifest, "--units", str(out), "--out", str(tmp_path / "n.jsonl"), "--trim-db", "0"])
    assert "--trim-db: a positive number, got '0'" in capsys.readouterr().err


def test_token_fields_that_are_not_integer_lists_or_do_not_fit_the_clip_are_refused_by_name(unit_manifest, tmp_path):
    from avkit.data.dataset import check_targets
    from avkit.data.manifest import read_manifest, write_manifest

    manifest = read_manifest(unit_manifest)
    bad = manifest.records[0]
    bad.extra["units"] = [1, -2, 3]
    with pytest.raises(ConfigError, match=f"line of '{bad.id}' holds \\[1, -2, 3\\], not a list of integers >= 0"):
        check_targets(manifest.records, {}, [], "head 'caption'", ["units"], "split 'train'")
    halved = [r for r in read_manifest(unit_manifest).records]
    for r in halved:  # durations at half the frame rate: another hop than the vocoder's
        r.extra["unit_durations"] = [max(1, d // 2) for d in r.extra["unit_durations"]]
    write_manifest(tmp_path / "halved.jsonl", halved)
    cfg = tiny_config(tmp_path / "halved.jsonl", tmp_path / "run", model={
        "towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}}},
        "heads": {"vocoder": {"kind": "unit_vocoder", "vocab": 12, "hidden": 8, "layers": 1}}})  # fmt: skip
    with pytest.raises(ConfigError, match="unit durations add up to .* frames, but its clip has 101 at hop 160"):
        train(from_dict(RunConfig, cfg))
    cfg = tiny_config(unit_manifest, tmp_path / "run-k", model={  # a head for fewer units than the file's k = 12
        "towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}}},
        "heads": {"vocoder": {"kind": "unit_vocoder", "vocab": 4, "hidden": 8, "layers": 1}}})  # fmt: skip
    with pytest.raises(ConfigError, match="field 'units' holds token .*, but vocab is 4; set the head's vocab to the units' k"):
        train(from_dict(RunConfig, cfg))


def test_a_teacher_classifier_left_out_of_the_init_is_refused(image_to_speech_run):
    from avkit.models import create_model

    source = str(image_to_speech_run.parent / "vocoder")  # any run: the check comes before any weight is copied
    config = {"towers": {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}},
                         "image": {"encoder": {"name": "image_resnet", "width": 4, "stages": 2}}},
              "heads": {"voice": {"kind": "regress_embedding"}}, "labels": ["a", "b"],
              "init": {"teacher": {"checkpoint": source, "parts": {"towers.image": "towers.image"}}}}  # fmt: skip
    with pytest.raises(ConfigError, match="needs its 'teacher_classifier' copied, frozen"):
        create_model(config, init=False)
