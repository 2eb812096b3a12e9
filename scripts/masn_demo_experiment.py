"""MASN, MSPAN or FAM, and MASN's question-only baseline, on a TGIF-format dataset (project issues 6, 15).

For every TGIF-QA task (Count, Action, Trans., FrameQA) this trains the model chosen with ``--arch``
(``masn``: Seo et al., ACL 2021; ``mspan``: Guo et al., ACL 2021; ``fam``: Cai et al., IJCAI 2020)
and, for MASN, the question-only baseline (``ModelConfig(question_only=True)``: the same model and
training with the visual streams replaced by learned constants) with identical settings, and writes

    OUT/<task>/<variant>/                each run's checkpoint, metrics.jsonl, predictions, run.json
    OUT/results.json                     one record per run
    OUT/results.md                       task (metric) | one column per variant | sizes | epochs | wall time

The gap between MASN and the question-only column is what the video features contribute. The README's
table (no downloads; random extractor weights and random word vectors, both recorded)::

    python -c "from pathlib import Path; from extract.datasets import generate_demo; \\
               generate_demo(Path('/tmp/demo600'), num_videos=600, seed=1)"
    OMP_NUM_THREADS=1 extract run --dataset tgif --data-root /tmp/demo600 --out /tmp/demo600_feat \\
        --preset tiny --weights random --batch-size 8
    OMP_NUM_THREADS=1 python scripts/masn_demo_experiment.py --data-root /tmp/demo600 \\
        --feat-dir /tmp/demo600_feat/masn --out /tmp/demo600_runs \\
        --hidden-size 128 --lr 5e-4 --standardize-features --epochs 30
    OMP_NUM_THREADS=1 python scripts/masn_demo_experiment.py --arch mspan -o node_dim=128 ...  # same flags
    OMP_NUM_THREADS=1 python scripts/masn_demo_experiment.py --arch fam ...                    # same flags

Random-weight features share a large per-channel offset (appearance) or are tiny (motion); without
``--standardize-features`` MASN stayed at the question prior on the demo's FrameQA (the three models
all support it; it z-scores the inputs they read). One intra-op thread is much faster than two on a
2-core machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from extract.videoqa.metrics import TGIF_TASK_NAMES
from extract.videoqa.registry import get_model_spec
from extract.videoqa.tasks import load_splits
from extract.videoqa.train import TrainConfig, train

TASKS = ("count", "action", "transition", "frameqa")
ARCHS = ("masn", "mspan", "fam")
LABELS = {"masn": "MASN", "mspan": "MSPAN", "fam": "FAM", "question_only": "question-only"}


def variants(arch: str) -> tuple[str, ...]:
    """The runs per task: the model, and for MASN its question-only baseline."""
    return ("masn", "question_only") if arch == "masn" else (arch,)


def run_one(args: argparse.Namespace, splits: dict, task: str, variant: str) -> dict:
    """Train one (task, variant) and return its summary record."""
    out_dir = args.out / task / variant
    spec = get_model_spec(args.arch)
    options = {"hidden_size": args.hidden_size, "dropout": args.dropout,
               "standardize_features": args.standardize_features} | args.model_option
    if variant == "question_only":
        options["question_only"] = True
    config = TrainConfig(
        dataset=args.dataset, task=task, feat_dir=args.feat_dir, out_dir=out_dir, data_root=args.data_root,
        random_embeddings=args.glove is None, glove=args.glove, epochs=args.epochs, patience=args.patience,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, num_workers=args.num_workers, progress="log",
        overwrite=True, arch=args.arch, model=spec.config(**options),
    )
    started = time.time()
    train(config, splits)
    run = json.loads((out_dir / "run.json").read_text())
    name = TGIF_TASK_NAMES[task]
    return {
        "task": name, "variant": variant, "test": run["test"][name], "val": run["val"][name],
        "metric": "MSE, lower is better" if task == "count" else "accuracy %",
        "questions": run["questions"], "selected_epoch": run["selected_epoch"], "epochs_run": run["epochs_run"],
        "seconds": time.time() - started, "out_dir": str(out_dir),
    }


def table(records: list[dict]) -> str:
    """The markdown results table, one row per task and one score column per variant run."""
    names = list(dict.fromkeys(r["variant"] for r in records))
    labels = [LABELS.get(n, n) for n in names]
    both = " / ".join(labels)
    rows = [f"| task (test metric) | {' | '.join(labels)} | questions (train / val / test) | "
            f"epochs run (selected), {both} | wall time, {both} |",
            "|---|" + "---|" * len(names) + "---|---|---|"]
    by = {(r["task"], r["variant"]): r for r in records}
    for task in TASKS:
        runs = [by.get((TGIF_TASK_NAMES[task], variant)) for variant in names]
        some = next((r for r in runs if r is not None), None)
        if some is None:
            continue
        q = some["questions"]
        score = " | ".join("-" if r is None else f"{r['test']:.2f}" for r in runs)
        epochs = " / ".join("-" if r is None else f"{r['epochs_run']} ({r['selected_epoch']})" for r in runs)
        seconds = " / ".join("-" if r is None else f"{r['seconds']:.0f} s" for r in runs)
        rows.append(f"| {some['task']} ({some['metric']}) | {score} | "
                    f"{q['train']} / {q['val']} / {q['test']} | {epochs} | {seconds} |")
    return "\n".join(rows) + "\n"


def model_option(pair: str) -> dict:
    """``NAME=VALUE`` (a YAML value) of the model's config."""
    name, sep, value = pair.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {pair!r}")
    return {name.strip(): yaml.safe_load(value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="tgif", help="TGIF-format dataset adapter (tgif, demo)")
    parser.add_argument("--data-root", type=Path, required=True, help="question files (and gifs/)")
    parser.add_argument("--feat-dir", type=Path, required=True, help="OUT/masn of `extract run`")
    parser.add_argument("--out", type=Path, required=True, help="where the runs and the results table go")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--arch", default="masn", choices=ARCHS, help="model to train (masn adds its question-only "
                        "baseline)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the arch's runs "
                        "(masn: masn,question_only); default: all")
    parser.add_argument("--glove", type=Path, default=None, help="GloVe text file; without it, random word vectors")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=None, help="early stopping; default: run every epoch")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the paper's per-task batch")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--standardize-features", action="store_true",
                        help="z-score feature channels with training statistics (needed for random-weight features)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--model-option", "-o", type=model_option, action="append", default=[],
                        help="NAME=VALUE of the model's config (e.g. node_dim=128 for mspan)")
    args = parser.parse_args()
    args.model_option = {k: v for option in args.model_option for k, v in option.items()}
    chosen = variants(args.arch) if args.variants is None else tuple(args.variants.split(","))

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    splits = load_splits(args.dataset, args.data_root)
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for task in args.tasks.split(","):
        if task not in TASKS:
            parser.error(f"unknown task {task!r}; expected some of {TASKS}")
        for variant in chosen:
            if variant not in variants(args.arch):
                parser.error(f"unknown variant {variant!r} for {args.arch}; expected some of {variants(args.arch)}")
            records.append(run_one(args, splits, task, variant))
            (args.out / "results.json").write_text(json.dumps(records, indent=1))
    (args.out / "results.md").write_text(table(records))
    print(table(records))


if __name__ == "__main__":
    main()
