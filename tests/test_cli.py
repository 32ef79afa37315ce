"""The `avkit` command: help that teaches, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avkit.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avkit", *args], capture_output=True, text=True, check=False)


def test_python_m_avkit_help_teaches():
    proc = run("--help")
    assert proc.returncode == 0
    for word in ("data", "features", "plot-audio", "a first session", "manifest"):
        assert word in proc.stdout


@pytest.mark.parametrize("sub", [["data", "digits"], ["data", "scenes"], ["data", "check"], ["features"], ["plot-audio"]])
def test_every_subcommand_has_help(sub, capsys):
    with pytest.raises(SystemExit) as info:
        main([*sub, "--help"])
    assert info.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_digits_then_check_then_broken(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["-q", "data", "digits", "--out", str(out), "--size", "small"]) == 0
    assert main(["-q", "data", "check", str(out / "manifest.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "OK" in text and "split train: 60 records" in text
    with (out / "manifest.jsonl").open("a") as handle:
        handle.write('{"id": "broken"\n')
    assert main(["-q", "data", "check", str(out / "manifest.jsonl")]) == 1
    text = capsys.readouterr().out
    assert "line 101: not valid JSON" in text and "FAILED: 1 problem(s)" in text


def test_missing_input_is_one_line_error_not_traceback(tmp_path):
    proc = run("plot-audio", str(tmp_path / "none.wav"), "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("none.wav: file does not exist")
    assert "Traceback" not in proc.stderr
    proc = run("data", "check", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "manifest does not exist" in proc.stderr


def test_plot_audio_and_features(small_digits, tmp_path, capsys):
    wav = next((small_digits / "audio").glob("*.wav"))
    assert main(["-q", "plot-audio", str(wav), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["-q", "features", str(small_digits / "manifest.jsonl"), "--out", str(tmp_path / "f.safetensors")]) == 0
    from avkit.data.features import FeatureCache

    cache = FeatureCache.load(tmp_path / "f.safetensors")
    assert len(cache.ids) == 100 and cache[cache.ids[0]].shape == (64, 101) and cache.settings["n_mels"] == 64
    manifest = str(small_digits / "manifest.jsonl")
    assert main(["-q", "features", manifest, "--out", manifest]) == 2  # never over its own input
    assert f"--out {manifest} is the input {manifest}; writing there would destroy it" in capsys.readouterr().err
    wav = str(sorted((small_digits / "audio").iterdir())[0])
    assert main(["-q", "features", manifest, "--out", wav]) == 2  # nor over a file it reads
    assert f"--out {wav} is the input" in capsys.readouterr().err
    assert json.loads((small_digits / "build.json").read_text())["records"] == 100


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    import avkit.cli as cli

    def broken(args):  # noqa: ANN001
        raise ValueError("something deep went wrong\nsecond line")

    monkeypatch.setattr(cli, "_cmd_check", broken)
    assert cli.main(["data", "check", "x.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "avkit: error: ValueError: something deep went wrong (run with --debug for the traceback)"
    with pytest.raises(ValueError, match="something deep"):
        cli.main(["--debug", "data", "check", "x.jsonl"])


def test_plot_audio_refuses_an_output_that_is_not_a_picture(tmp_path, speechlike, capsys):
    import soundfile as sf

    from avkit.cli import main

    sf.write(tmp_path / "a.wav", speechlike, 16000)
    for out in ("x.wav", "x.xyz"):
        assert main(["plot-audio", str(tmp_path / "a.wav"), "--out", str(tmp_path / out)]) == 2
        assert "a picture file" in capsys.readouterr().err
    assert main(["plot-audio", str(tmp_path / "a.wav"), "--out", str(tmp_path / "x.png"), "--win", "1024", "--n-fft", "512"]) == 2
    assert "longer than --n-fft" in capsys.readouterr().err
