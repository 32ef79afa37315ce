"""Wall time of ``experiments/joint_embedding.py`` end to end: this avkit against avkit 0.1, side by side.

    python benchmarks/experiment_time.py [--data data/digits] [--rounds 3] [--baseline-commit aa6b09c]

Each round runs avkit 0.1's own ``experiments/joint_embedding.py`` (commit
``--baseline-commit``, in a git worktree: ``experiments/old_avkit.py``) and
this one's, in turn, each in a fresh process writing into an empty folder
(``runs/experiment_time/``), so both build nothing twice and train all three
runs (contrastive, teacher, distillation), evaluate and draw their controls.
This one draws 5 control seeds (its default), avkit 0.1 one. The table gives
each round's seconds and their ratio, and the median (min-max). Run it with
nothing else on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import old_avkit  # noqa: E402  (experiments/old_avkit.py)


def timed(what: str, cmd: list[str], cwd: Path, env: dict[str, str], out: Path) -> float:
    """Seconds ``cmd`` took, run into the emptied folder ``out`` (its output in ``out/console.log``)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    old_avkit.run_logged(what, cmd, out / "console.log", cwd, env)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits", help="a built AV-digits folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "experiment_time", help="run folders (replaced)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both (default 3)")
    parser.add_argument("--baseline-commit", default=old_avkit.COMMIT)
    args = parser.parse_args(argv)
    data = args.data.resolve()
    if not (data / "manifest.jsonl").is_file() or args.rounds < 1:
        parser.error(f"--data {data} must hold a built AV-digits (avkit data digits --out {data}); --rounds >= 1")
    src = old_avkit.checkout(args.baseline_commit)
    script = "experiments/joint_embedding.py"
    times: dict[str, list[float]] = {"avkit 0.1": [], "this avkit": []}
    try:
        for i in range(args.rounds):
            for name, cwd, env in (("avkit 0.1", src, {**os.environ, "PYTHONPATH": str(src)}), ("this avkit", ROOT, dict(os.environ))):
                out = (args.out / name.replace(" ", "-")).resolve()
                print(f"round {i + 1}/{args.rounds}: {name}", file=sys.stderr)
                times[name].append(timed(f"{name}'s {script}", [sys.executable, script, "--data", str(data), "--out", str(out),
                                          "--results", str(out / "results.md")], cwd, env, out))  # fmt: skip
    except old_avkit.RunError as exc:
        print(f"experiment_time: error: {exc}", file=sys.stderr)
        return 2
    ratios = [new / old for new, old in zip(times["this avkit"], times["avkit 0.1"])]
    print(f"experiments/joint_embedding.py end to end, wall seconds; avkit 0.1 = commit {args.baseline_commit}\n")
    print("| round | avkit 0.1 | this avkit | this / 0.1 |\n| --- | ---: | ---: | ---: |")
    for i, (old, new, r) in enumerate(zip(times["avkit 0.1"], times["this avkit"], ratios), start=1):
        print(f"| {i} | {old:.0f} | {new:.0f} | {r:.2f} |")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| median (min-max) | {med['avkit 0.1']:.0f} | {med['this avkit']:.0f} | "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
    print(f"\nno more time than avkit 0.1 in every round: {'met' if max(ratios) <= 1.0 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
