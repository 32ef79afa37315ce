"""The main job on a small build: report, plots and recorded config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL_MODEL = ["--set", "matching.epochs=1", "--set", "matching.queries=1", "--set", "localization.epochs=1",
               "--set", "localization.cases=2", *(f"--set=translation.{k}=1" for k in (
                   "classifier_epochs", "decoder_epochs", "voice_epochs", "vocoder_epochs", "caption_epochs")),
               "--set", "translation.units=8"]  # fmt: skip


def test_demo_writes_report_plots_and_config(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "demo.py"), "--out", str(out), "--set", "digits.size=small",
         *SMALL_MODEL],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (out / "report.md").read_text()
    for plot in ("three_views.png", "pairs.png", "scenes.png"):
        assert f"plots/{plot}" in report
        assert (out / "plots" / plot).stat().st_size > 10_000
    assert "100 usable records, 0 problems" in report
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["seed"] == 0 and cfg["config"]["digits"]["size"] == "small"
    assert cfg["environment"]["torch"]
    # matching: metrics both ways, curves, galleries, indexes
    assert "| audio → image |" in report and "| image → audio |" in report
    assert (out / "contrastive" / "plots" / "curves.png").is_file()
    galleries = sorted((out / "plots").glob("query-*.png"))
    assert len(galleries) == 2 and all(f"plots/{g.name}" in report for g in galleries)
    assert (out / "index-audio" / "info.json").is_file() and (out / "index-image" / "info.json").is_file()
    # localization: the protocol's table and the best and worst scenes
    assert "## Localization" in report and "| visual only |" in report
    assert (out / "plots" / "localization-cases.png").stat().st_size > 10_000
    # translation: one example each way, the sounds and the speech linked
    assert "## Translation" in report and "plots/translation-speech-to-image.png" in report
    assert (out / "plots" / "translation-speech-to-image.png").stat().st_size > 10_000
    links = [line.split("[listen](")[1].split(")")[0] for line in report.splitlines() if "[listen](" in line]
    assert all((out / link).is_file() for link in links), links
    assert links or "became no units at all" in report  # a 1-epoch decoder may end at once; the report says so
    assert "](data/digits/audio/" in report  # the input sounds, linked
    # A second run reuses the data and the model built with the same config.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "demo.py"), "--out", str(out), "--set", "digits.size=small",
         *SMALL_MODEL],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = (out / "report.md").read_text()
    assert "build AV-digits (reused)" in again and "train contrastive model (reused)" in again
    assert "train localization model (reused)" in again
    assert "train voice encoder (speech -> image) (reused)" in again and "train unit vocoder (reused)" in again


def test_demo_bad_config_is_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "demo.py"), "--out", str(tmp_path), "--set", "digits.size=huge"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "digits.size: 'huge' is not one of ['small', 'default']" in proc.stderr
