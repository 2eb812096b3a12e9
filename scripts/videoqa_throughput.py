"""Training throughput (questions/s, forward + backward + Adam step) of every registered VideoQA model.

Each model is built at its paper size (its config's defaults) and at a small size (every width 128),
with 2048-d appearance and motion features, the steps per video its registry entry samples for TGIF
(MASN: 20 steps of 10 objects; MSPAN: 16; FAM: 35), 10-token questions, 300-d word vectors, and a
random batch of ``--batch-size`` questions; one warm-up step, then ``--steps`` timed steps::

    OMP_NUM_THREADS=1 python scripts/videoqa_throughput.py --heads open,choice

writes one markdown row per (model, size, head) to stdout. Multiple choice has 5 candidate rows per
question (MSPAN and FAM run their question-conditioned reasoning once per row).
"""

from __future__ import annotations

import argparse
import time

import torch

from extract.videoqa.data import Batch
from extract.videoqa.losses import head_loss
from extract.videoqa.registry import get_model_spec, list_models

FEATURE_DIM, OBJECTS, WORD_DIM, VOCAB, TOKENS, ANSWERS, CANDIDATES = 2048, 10, 300, 4000, 10, 1000, 5


def small_options(config_class) -> dict:
    """Every width of the model set to 128."""
    return {name: 128 for name in ("hidden_size", "node_dim") if name in config_class.model_fields}


def random_batch(batch_size: int, steps: int, head: str) -> Batch:
    B, T, C = batch_size, steps, CANDIDATES if head == "choice" else 1
    targets = {"count": torch.randint(1, 11, (B,)), "choice": torch.randint(0, C, (B,)),
               "open": torch.randint(0, ANSWERS, (B,))}[head].float()
    return Batch(
        app_global=torch.randn(B, T, FEATURE_DIM), mot_global=torch.randn(B, T, FEATURE_DIM),
        app_objects=torch.randn(B, T, OBJECTS, FEATURE_DIM), mot_objects=torch.randn(B, T, OBJECTS, FEATURE_DIM),
        boxes=torch.rand(B, T, OBJECTS, 6), steps=torch.arange(T).float().expand(B, T),
        video_mask=torch.ones(B, T, dtype=torch.bool), tokens=torch.randint(1, VOCAB, (B, C, TOKENS)),
        lengths=torch.full((B, C), TOKENS), targets=targets, index=torch.arange(B),
    )


def measure(name: str, options: dict, head: str, batch_size: int, steps: int) -> tuple[float, int, int]:
    """(questions/s, parameters, steps per video) of ``name`` built with ``options``."""
    spec = get_model_spec(name)
    torch.manual_seed(0)
    model = spec.builder(spec.config(**options), vocab_size=VOCAB, word_dim=WORD_DIM, appearance_dim=FEATURE_DIM,
                         motion_dim=FEATURE_DIM, head=head, num_answers=ANSWERS).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    video_steps = spec.max_steps("tgif") if spec.max_steps else 20  # the trainer's TGIF default otherwise
    batch = random_batch(batch_size, video_steps, head)

    def step() -> None:
        loss = head_loss(head, model(batch), batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, lazy initialisation
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return batch_size * steps / seconds, parameters, video_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(list_models()), help="comma-separated registered models")
    parser.add_argument("--sizes", default="paper,small", help="paper (config defaults) and/or small (widths 128)")
    parser.add_argument("--heads", default="open", help="comma-separated heads: count, choice, open")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, batch {args.batch_size}")
    print("| model | size | head | steps/video | trainable parameters | questions/s |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        config_class = get_model_spec(name).config
        for size in args.sizes.split(","):
            options = {} if size == "paper" else small_options(config_class)
            for head in args.heads.split(","):
                rate, parameters, video_steps = measure(name, options, head, args.batch_size, args.steps)
                print(f"| {name} | {size} | {head} | {video_steps} | {parameters / 1e6:.1f} M | {rate:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
