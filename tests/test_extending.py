"""Adding a third modality in one file (docs/examples/depth_modality.py), then training,
embedding, indexing and querying with it, through the same code and CLI as audio and image."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config, write_config

from avkit.cli import main
from avkit.data.manifest import read_manifest
from avkit.modalities import list_modalities
from avkit.modalities.base import MODALITIES
from avkit.models.encoders import ENCODERS
from avkit.vision.io import load_image

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "depth_modality.py"


@pytest.fixture
def depth_modality():
    runpy.run_path(str(EXAMPLE))
    yield
    MODALITIES.unregister("depth")
    ENCODERS.unregister("depth_cnn")


def _depth_dataset(small_digits: Path, out: Path) -> Path:
    """AV-digits with a 'depth' map per item: the digit's ink as a surface 1 m in front of a 3 m wall."""
    (out / "depth").mkdir(parents=True)
    man = read_manifest(small_digits / "manifest.jsonl")
    lines = []
    for rec in man:
        ink = load_image(man.resolve(rec, "image"))[0].numpy()
        np.save(out / "depth" / f"{rec.id}.npy", 3.0 - 2.0 * ink)
        lines.append({"id": rec.id, "audio": str(man.resolve(rec, "audio")), "depth": f"depth/{rec.id}.npy",
                      "label": rec.label, "split": rec.split})  # fmt: skip
    (out / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return out / "manifest.jsonl"


def test_a_depth_modality_trains_embeds_indexes_and_queries(depth_modality, small_digits, tmp_path, capsys):
    assert "depth" in list_modalities()
    manifest = _depth_dataset(small_digits, tmp_path / "data")
    towers = {"audio": {"encoder": {"name": "logmel_cnn", "width": 4}}, "depth": {"encoder": {"width": 4}}}
    cfg = tiny_config(manifest, tmp_path / "run", **{"model.towers": towers, "model.heads.contrastive.towers": ["audio", "depth"]})
    assert main(["train", str(write_config(tmp_path / "c.json", cfg))]) == 0
    assert "contrastive/depth_to_audio/mAP" in capsys.readouterr().out
    assert main(["data", "check", str(manifest), "--modalities", "audio,depth"]) == 0  # checked by its own loader
    bad = tmp_path / "data" / "depth" / "bad.npy"
    np.save(bad, np.zeros(3))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "b", "audio": str(next((small_digits / "audio").iterdir())),
                                                     "depth": str(bad)}) + "\n")  # fmt: skip
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "bad.jsonl"), "--modalities", "audio,depth"]) == 1
    assert "expected a finite 2-D depth map" in capsys.readouterr().out

    emb = tmp_path / "depth.safetensors"
    assert main(["embed", "--checkpoint", str(tmp_path / "run"), "--manifest", str(manifest),
                 "--modality", "depth", "--split", "test", "--out", str(emb)]) == 0  # fmt: skip
    assert main(["index", "build", "--embeddings", str(emb), "--out", str(tmp_path / "idx")]) == 0
    wav = next((small_digits / "audio").iterdir())
    capsys.readouterr()
    assert main(["query", "--index", str(tmp_path / "idx"), "--checkpoint", str(tmp_path / "run"),
                 "--audio", str(wav), "-k", "3", "--gallery", str(tmp_path / "g.png")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 nearest depth items of 20" in out and (tmp_path / "g.png").stat().st_size > 1000
    # the new modality also gets the CLI option for free
    depth_file = next((tmp_path / "data" / "depth").iterdir())
    assert main(["query", "--index", str(tmp_path / "idx"), "--checkpoint", str(tmp_path / "run"),
                 "--depth", str(depth_file), "-k", "1"]) == 0  # fmt: skip


HEAD_EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "regression_head.py"


@pytest.fixture
def regression_head():
    import avkit.plugins
    from avkit.models.heads import HEADS

    yield str(HEAD_EXAMPLE)
    HEADS.unregister("regress")
    avkit.plugins._loaded.discard(str(HEAD_EXAMPLE))


def test_a_head_in_one_file_trains_evaluates_and_reloads(regression_head, small_digits, tmp_path, capsys):
    heads = {"contrastive": {"towers": ["audio", "image"]},
             "regress": {"tower": "audio", "field": "snr_db", "mean": 17.5, "std": 7.2}}  # fmt: skip
    cfg = tiny_config(small_digits / "manifest.jsonl", tmp_path / "run", **{"model.heads": heads, "optim.epochs": 3,
                                                                            "loss_weights.regress.l1": 2.0})  # fmt: skip
    config = write_config(tmp_path / "c.json", cfg)
    assert main(["--plugin", regression_head, "train", str(config)]) == 0
    out = capsys.readouterr().out
    assert "regress/mae" in out and "regress/r2" in out and "contrastive/score" in out
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r["kind"] == "train")
    assert first["loss"] == pytest.approx(first["contrastive/infonce"] + 2.0 * first["regress/l1"], rel=1e-5)
    losses = [r["regress/l1"] for r in rows if r["kind"] == "train"]
    assert sum(losses[-3:]) < sum(losses[:3])  # it learns

    from avkit.data.dataset import ManifestDataset, make_loader, sequential_batches
    from avkit.models import load_model

    model = load_model(tmp_path / "run")  # rebuilt from the checkpoint, the plugin's head included
    test = ManifestDataset(small_digits / "manifest.jsonl", model.pipelines(), split="test", fields=["snr_db"])
    metrics = model.evaluate(make_loader(test, sequential_batches(len(test), 8)))
    assert 0 < metrics["regress/mae"] < 15 and "contrastive/audio_to_image/R@1" in metrics

    heads["regress"]["field"] = "loudness"  # a field the manifest lacks: refused before training
    bad = write_config(tmp_path / "bad.json", tiny_config(small_digits / "manifest.jsonl", tmp_path / "bad",
                                                          **{"model.heads": heads}))  # fmt: skip
    assert main(["--plugin", regression_head, "train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "head 'regress' needs the manifest field 'loudness' on every item, but 60 of 60" in err
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_an_unknown_head_hints_at_plugins_and_a_missing_plugin_is_named(small_digits, tmp_path, capsys):
    cfg = tiny_config(small_digits / "manifest.jsonl", tmp_path / "run", **{"model.heads": {"regress": {}}})
    assert main(["train", str(write_config(tmp_path / "c.json", cfg))]) == 2
    err = capsys.readouterr().err
    assert "unknown head 'regress'; known: ['caption', 'classify', 'contrastive', 'distill', 'image_decoder', " in err
    assert "--plugin FILE" in err
    assert main(["--plugin", str(tmp_path / "none.py"), "list"]) == 2
    assert "none.py: file does not exist" in capsys.readouterr().err


def test_a_plugin_that_fails_is_one_line_naming_it_and_debug_shows_the_traceback(tmp_path, capsys):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text("raise ValueError('bad constant in my plugin')\n")
    assert main(["--plugin", str(plugin), "list"]) == 2
    err = capsys.readouterr().err
    assert f"plugin {plugin} failed: ValueError: bad constant in my plugin" in err and len(err.strip().splitlines()) == 1
    assert main(["--debug", "--plugin", str(tmp_path / "broken_plugin2.py"), "list"]) == 2  # missing: no traceback
    plugin.rename(tmp_path / "broken_plugin3.py")
    assert main(["--debug", "--plugin", str(tmp_path / "broken_plugin3.py"), "list"]) == 2
    assert "Traceback" in capsys.readouterr().err
