"""The data-at-scale path of docs/data.md, run as written: videos -> manifest -> check -> shards -> train ->
embed on 2 processes -> index -> query, on videos made from a small AV-digits build."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "data.md"
MARKER = "<!-- the block below is run by tests/test_data_path.py -->"


def documented_commands() -> list[str]:
    """The commands of the tested block in docs/data.md, continuation lines joined, comments dropped."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_documented_path_from_videos_to_a_query_runs(small_digits, tmp_path):
    commands = documented_commands()
    assert [c.split()[:3] for c in commands] == [
        ["avkit", "data", "digit-videos"], ["avkit", "data", "from-videos"], ["avkit", "data", "check"],
        ["avkit", "data", "shard"], ["avkit", "train", "experiments/configs/contrastive.toml"],
        ["torchrun", "--standalone", "--nproc_per_node"], ["avkit", "index", "build"], ["avkit", "query", "--index"],
    ]  # fmt: skip
    # the small build has other voices: query with a clip of the same digit that it has
    query = next(json.loads(line)["audio"] for line in (small_digits / "manifest.jsonl").read_text().splitlines()
                 if json.loads(line)["label"] == "7")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = []
    for command in commands:
        command = re.sub(r"data/digits/audio/\S+\.wav", str(small_digits / query), command)
        command = command.replace("data/digits", str(small_digits))
        command = command.replace("experiments/configs/", f"{REPO}/experiments/configs/")
        argv = shlex.split(command)
        argv = ([sys.executable, "-m", "torch.distributed.run", *argv[1:]] if argv[0] == "torchrun"
                else [sys.executable, "-m", *argv])  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert res.returncode == 0, f"{command}\n{res.stderr[-3000:]}"
        outputs.append(res.stdout)

    manifest = [json.loads(line) for line in (tmp_path / "data/clips/manifest.jsonl").read_text().splitlines()]
    assert manifest and all("video" in line and "t" in line for line in manifest)
    assert "OK" in outputs[2]
    shards = json.loads((tmp_path / "data/clips-shards/shards.json").read_text())
    assert shards["items"] == sum(line["split"] == "train" for line in manifest)
    summary = json.loads((tmp_path / "runs/clips/summary.json").read_text())
    assert summary["steps"] > 0 and not summary["skipped"]["train"]
    assert f"indexed {len(manifest)} image vectors" in outputs[6] and "inverted lists on disk" in outputs[6]
    hits = [line for line in outputs[7].splitlines() if ".mp4" in line]
    assert len(hits) >= 5, outputs[7]  # each hit names its video
