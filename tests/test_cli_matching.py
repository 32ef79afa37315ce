"""avkit embed / index / query: the happy path, and each bad-input case as a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from avkit.cli import main
from avkit.models import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def image_index(trained_run: Path, small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("idx")
    assert main(["embed", "--checkpoint", str(trained_run), "--manifest", str(small_digits / "manifest.jsonl"),
                 "--modality", "image", "--split", "test", "--out", str(out / "img.safetensors")]) == 0  # fmt: skip
    assert main(["index", "build", "--embeddings", str(out / "img.safetensors"), "--out", str(out / "idx")]) == 0
    return out


def _query(image_index: Path, run: Path, *extra: str) -> list[str]:
    return ["query", "--index", str(image_index / "idx"), "--checkpoint", str(run), *extra]


def test_query_prints_ranked_ids_scores_labels_paths(image_index, trained_run, small_digits, capsys):
    wav = sorted((small_digits / "audio").iterdir())[0]
    assert main(_query(image_index, trained_run, "--audio", str(wav), "-k", "3")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "3 nearest image items of 20" in lines[0] and lines[1].split()[:4] == ["rank", "score", "id", "label"]
    scores = [float(line.split()[1]) for line in lines[2:5]]
    assert scores == sorted(scores, reverse=True) and all(line.rstrip().endswith(".png") for line in lines[2:5])


def test_k_larger_than_the_index_returns_everything(image_index, trained_run, small_digits, capsys):
    wav = sorted((small_digits / "audio").iterdir())[0]
    assert main(_query(image_index, trained_run, "--audio", str(wav), "-k", "500")) == 0
    out = capsys.readouterr().out
    assert "(asked for 500; the index holds only 20)" in out


@pytest.mark.parametrize("case", ["wrong_modality", "unreadable", "two_queries", "other_model"])
def test_bad_queries_are_one_line_errors(case, image_index, trained_run, small_digits, tmp_path, capsys):
    png = sorted((small_digits / "images").iterdir())[0]
    args = {
        "wrong_modality": _query(image_index, trained_run, "--audio", str(png)),
        "unreadable": _query(image_index, trained_run, "--audio", str(tmp_path / "nope.wav")),
        "two_queries": _query(image_index, trained_run, "--audio", str(png), "--image", str(png)),
        "other_model": _query(image_index, _other_checkpoint(trained_run, tmp_path), "--image", str(png)),
    }[case]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {
        "wrong_modality": f"{png.name}: cannot be decoded as audio",
        "unreadable": "nope.wav: file does not exist",
        "two_queries": "give exactly one query file",
        "other_model": "index was built with embedding model",
    }[case] in err


def _other_checkpoint(run: Path, tmp_path: Path) -> Path:
    """The run's checkpoint with one weight changed: same architecture, another fingerprint."""
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    weights = ckpt.model_state()
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name] + 1.0
    out = tmp_path / "other.safetensors"
    save_checkpoint(out, weights, ckpt.model_config, ckpt.state)
    return out


def test_index_add_refuses_duplicates_unless_replace(image_index, capsys):
    args = ["index", "add", "--index", str(image_index / "idx"), "--embeddings", str(image_index / "img.safetensors")]
    assert main(args) == 2
    assert "already in the index" in capsys.readouterr().err
    assert main([*args, "--replace"]) == 0
    assert "20 -> 20 items" in capsys.readouterr().out
    assert main(["index", "build", "--embeddings", str(image_index / "img.safetensors"), "--out", str(image_index / "idx")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_corrupt_checkpoint_and_index_are_named(image_index, trained_run, small_digits, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    wav = sorted((small_digits / "audio").iterdir())[0]
    assert main(_query(image_index, bad, "--audio", str(wav))) == 2
    assert "bad.safetensors: corrupt or unreadable checkpoint" in capsys.readouterr().err
    assert main(["index", "info", str(tmp_path)]) == 2
    assert "not an index directory" in capsys.readouterr().err


def test_query_search_parameters_are_checked_where_given(image_index, trained_run, small_digits, capsys):
    wav = sorted((small_digits / "audio").iterdir())[0]
    with pytest.raises(SystemExit):  # argparse: a usage line and exit 2
        main(_query(image_index, trained_run, "--audio", str(wav), "--ef-search", "-5"))
    assert "argument --ef-search: a positive integer, got '-5'" in capsys.readouterr().err
    assert main(_query(image_index, trained_run, "--audio", str(wav), "--ef-search", "16")) == 2  # a Flat index
    assert "search parameter efSearch does not apply to a 'Flat' index" in capsys.readouterr().err


def test_no_command_writes_over_its_inputs(image_index, trained_run, small_digits, tmp_path, capsys):
    """Each output that is one of the command's inputs is refused before anything is written."""
    manifest = small_digits / "manifest.jsonl"
    wav, png = sorted((small_digits / "audio").iterdir())[0], sorted((small_digits / "images").iterdir())[0]
    emb = image_index / "img.safetensors"
    before = {p: p.read_bytes() for p in (manifest, wav, png, emb)}
    cases = {
        "embed over its manifest": (["embed", "--checkpoint", str(trained_run), "--manifest", str(manifest),
                                     "--modality", "image", "--out", str(manifest)], f"--out {manifest} is the input"),
        "embed over an image it reads": (["embed", "--checkpoint", str(trained_run), "--manifest", str(manifest),
                                          "--modality", "image", "--out", str(png)], f"--out {png} is the input"),
        "index build over its embeddings": (["index", "build", "--embeddings", str(emb), "--out", str(emb)],
                                            f"--out {emb} is the input"),
        "gallery over the query": (_query(image_index, trained_run, "--image", str(png), "--gallery", str(png)),
                                   f"--gallery {png} is the input"),
        "gallery that is not a picture": (_query(image_index, trained_run, "--audio", str(wav), "--gallery",
                                                 str(tmp_path / "g.jsonl")), "--gallery"),
        "scenes into their source": (["data", "scenes", "--from", str(small_digits), "--out", str(small_digits)],
                                     "is the input"),
        "plot-audio over its input": (["plot-audio", str(wav), "--out", str(wav)], "a picture file"),
    }  # fmt: skip
    for name, (args, message) in cases.items():
        assert main(args) == 2, name
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert {p: p.read_bytes() for p in before} == before
