"""The multiple-choice demo end to end: generate demo-mc, extract all four stages on its
ground-truth detections (``--detections``), export the NExT-QA layout, train five models and
print one markdown table (validation-selected epoch, test accuracy by question type, wall time).

    python scripts/nextqa_demo_experiment.py --root /work/runs/demo_mc_data --runs /work/runs/demo_mc_150 \
        --videos 150 --epochs 20

Every step is a plain ``extract`` command (printed before it runs), so the table can be
reproduced by hand; a step whose output exists is skipped (extraction resumes by itself).
Backbones are the tiny preset with random weights: see the README for what that table can show.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# (row name, model, extra `extract train` arguments)
MODELS = (
    ("question-only (HGA)", "hga", ["--question-only"]),
    ("HGA", "hga", []),
    ("HGA + a-,qa-", "hga", ["--augment", "a-,qa-"]),
    ("trajectory_hg", "trajectory_hg", []),
    ("trajectory_hg + a-,qa-", "trajectory_hg", ["--augment", "a-,qa-"]),
)
TYPES = ("CW", "CH", "TN", "TC", "DC", "DL", "DO", "All")


def extract(*args: str) -> float:
    """Run ``python -m extract ARGS``; its wall seconds."""
    command = [sys.executable, "-m", "extract", *args]
    print("$", shlex.join(["extract", *args]), flush=True)
    start = time.monotonic()
    subprocess.run(command, check=True, env=os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="demo-mc data root (generated if absent)")
    parser.add_argument("--runs", type=Path, required=True, help="where the extraction, export and runs go")
    parser.add_argument("--extracted", type=Path, default=None, help="reuse this RUNS dir's extract/ and export/")
    parser.add_argument("--videos", type=int, default=150, help="demo-mc videos to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: each model's paper value)")
    args = parser.parse_args()

    from extract.datasets.demo_mc import generate_demo_mc
    from extract.videoqa.metrics import evaluate_nextqa

    if not (args.root / "test.csv").is_file():
        generate_demo_mc(args.root, num_videos=args.videos, seed=args.seed)
    base = args.extracted or args.runs
    out, export = base / "extract", base / "export"
    times = {"extract": extract("run", "--dataset", "demo-mc", "--data-root", str(args.root), "--out", str(out),
                                "--detections", str(args.root / "detections"))}
    if not (export / "vid_feat").is_dir():
        times["export"] = extract("export", "nextqa", str(out), "--out", str(export))
    rows = []
    for name, model, extra in MODELS:
        run = args.runs / name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus").replace(",", "")
        if not (run / "run.json").is_file():
            seconds = extract("train", model, "--dataset", "nextqa", "--data-root", str(args.root), "--feat-dir",
                              str(export), "--out-dir", str(run), "--random-embeddings", "--epochs", str(args.epochs),
                              "--patience", str(args.patience), "--hidden-size", str(args.hidden_size), "--overwrite",
                              *(["--lr", str(args.lr)] if args.lr else []), *extra)
            (run / "wall_s.txt").write_text(f"{seconds:.1f}\n")
        extract("evaluate", "nextqa", "--predictions", str(run / "predictions_test.json"), "--annotations",
                str(args.root / "test.csv"))
        metrics = evaluate_nextqa(run / "predictions_test.json", args.root / "test.csv")
        summary = json.loads((run / "run.json").read_text())
        rows.append((name, summary, metrics, float((run / "wall_s.txt").read_text())))
    print(f"\nextraction {times['extract']:.0f} s ({args.videos} videos)\n")
    print("| model | epoch (val) | val acc | " + " | ".join(TYPES) + " | wall s |")
    print("|---" * (len(TYPES) + 4) + "|")
    for name, summary, metrics, seconds in rows:
        epoch = f"{summary['selected_epoch']} of {summary['epochs_run']}"
        val = summary["val"].get("All", summary["val"].get("accuracy"))
        cells = ["-" if metrics.get(t) is None else f"{metrics[t]:.1f}" for t in TYPES]
        print(f"| {name} | {epoch} | {'-' if val is None else f'{val:.1f}'} | " + " | ".join(cells) + f" | {seconds:.0f} |")


if __name__ == "__main__":
    main()
