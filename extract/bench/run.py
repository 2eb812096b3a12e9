"""``extract bench``: throughput per stage, against a naive baseline in the same run.

The same input set goes through two extractors that share their weights and their pass
functions (``extract.bench.paths``): the optimized local executor, and the naive schedule.
Each stage is timed with :class:`extract.timing.StageTimer` (CUDA synchronized at section
edges). In the optimized path stages overlap (decode runs in its own process, and the model
tasks on two threads), so their times add up to more than the wall time; shares are of the
summed stage time. The ratio of the two wall times is the last line of the report.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extract.bench.measure import machine
from extract.bench.paths import compare, run_naive, run_optimized
from extract.synthetic import write_synthetic

# Settings that only concern speed: the naive baseline always runs with these values (and with the
# preset's detector input size, see ``baseline_config``).
BASELINE = {
    "runtime": {"model_workers": 1, "channels_last": False, "amp": False},
    "roi": {"fast": False},
    "detector": {"batch_size": 1, "rpn_pre_nms_top_n": None, "rpn_post_nms_top_n": None},
}
# Videos per dataset, and the mean video length (seconds) used to scale the projection by duration.
DATASET_SIZES = {
    "TGIF-QA": (71_741, 3.1),  # GIFs; TGIF reports a 3.1 s mean
    "MSVD": (1_970, 9.7),  # 1,970 clips, 5.3 h in all
    "MSRVTT": (10_000, 14.8),  # 10,000 clips, 41.2 h in all
    "NExT-QA": (5_440, 44.0),  # 5,440 videos, 44 s mean
}


def run_bench(
    *,
    preset: str = "tiny",
    videos: Path | None = None,
    synthetic: int | None = None,
    device: str = "auto",
    weights: str = "random",
    batch_size: int | None = None,
    stages: Sequence[str] | str | None = None,
    options: dict | None = None,
    seed: int = 0,
    shard_videos: int | None = None,
    limit: int | None = None,
    check: bool = True,
    naive_threads: int | None = None,
    work_dir: Path | None = None,
) -> dict:
    """Run the naive baseline, then the optimized pipeline, on the same inputs; return the results.

    Args:
        videos / synthetic: a directory of videos, or the number of synthetic GIFs to write
            (``write_synthetic``, seeded by ``seed``); exactly one.
        options: further config overrides, nested like the YAML (e.g. ``{"runtime": {"amp": True}}``).
        check: compare the two paths' features after timing (not timed).
        naive_threads: torch threads of the naive path; torch's default (every core) when None.
        work_dir: where inputs (synthetic) and outputs go; a temporary directory by default,
            removed at the end.
    """
    import torch

    from extract.config import load_config, deep_merge
    from extract.names import STAGES
    from extract.datasets import folder
    from extract.decode_pool import DecodePool
    from extract.features.build import build_extractor, naive_extractor, resolve_all_weights
    from extract.features.runtime import configure_threads, cpu_count, resolve_device
    from extract.timing import StageTimer
    from extract.video import decode

    if (videos is None) == (synthetic is None):
        raise ValueError("give exactly one of videos (a directory) or synthetic (a number of videos)")
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="extract-bench-")) if own_dir else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    try:
        videos, source = bench_inputs(work, videos, synthetic, seed)
        overrides = {
            "videos": Path(videos),
            "out": work / "optimized",
            "stages": list(STAGES) if stages is None else stages,
            "preset": preset, "weights": weights, "runtime": {"device": device, "batch_size": batch_size},
        }
        if shard_videos is not None:
            overrides["shard_videos"] = shard_videos
        if weights == "random":
            # Random-weight scores sit far below the default stop score; 0 lets trajectories form
            # so that linking does the work it does on real detections.
            overrides["linking"] = {"min_score": 0.0}
        config = load_config("folder", overrides=deep_merge(overrides, options or {}))
        records = folder.load(Path(videos))
        if limit is not None:
            records = records[:limit]
        if not records:
            raise ValueError(f"no videos in {videos}")
        dev = resolve_device(config.runtime.device)
        resolved = resolve_all_weights(config, config.stages)
        naive_timer, opt_timer = (StageTimer(cuda_sync=dev.type == "cuda") for _ in range(2))
        extractor = build_extractor(config, config.stages, resolved, config.linking, timer=opt_timer)
        baseline = baseline_config(config)
        # The baseline copies the optimized path's models, or (speed options given: amp, a
        # smaller detector input...) models built without those options, dropped once copied.
        if baseline == config:
            naive = naive_extractor(extractor, baseline, timer=naive_timer)
        else:
            naive = naive_extractor(build_extractor(baseline, config.stages, resolved, config.linking), baseline, timer=naive_timer)

        # Inputs (untimed): what the throughput is per.
        info, warm = [], None
        for record in records:
            try:
                v = decode(record.path, config.sampling, config.decode)
            except Exception:  # noqa: BLE001 - a failed video costs both paths the same
                continue
            info.append((v.duration, v.num_grid, len(v.steps)))
            warm = warm or v
        if not info:
            raise ValueError(f"none of the {len(records)} videos in {videos} decodes")
        grid_frames = sum(g for _, g, _ in info)

        # Warm-up (untimed): allocator, oneDNN primitives, cuDNN autotuning, lazy imports, and the
        # server the decoding children fork from (started once per process, as in extract run,
        # where it starts while the models are built).
        DecodePool(config.sampling, config.decode, 1).close()
        torch.set_num_threads(naive_threads or cpu_count())
        naive([warm])
        configure_threads(config)
        extractor([warm])
        naive_timer.reset()
        opt_timer.reset()
        naive.computed = naive.needed = extractor.computed = extractor.needed = 0

        torch.set_num_threads(naive_threads or cpu_count())  # public scripts: torch's default, every core
        naive_result = run_naive(naive, records, config, work / "naive.h5", naive_timer, dev)
        naive_result.threads = torch.get_num_threads()
        opt_threads = configure_threads(config)
        opt_result = run_optimized(config, extractor, records, work / "optimized", opt_timer, dev)
        opt_result.threads = opt_threads

        result = {
            "machine": machine(dev),
            "preset": preset,
            "weights": weights,
            "weights_note": "RANDOM weights: timing only, features meaningless" if weights == "random" else weights,
            "stages": list(config.stages),
            "batch_size": config.runtime.batch_size,
            "config": config.model_dump(mode="json"),
            "inputs": {
                "source": source,
                "videos": len(records),
                "decoded": len(info),
                "mean_duration_s": float(np.mean([d for d, _, _ in info])),
                "grid_frames": grid_frames,
                "steps": sum(t for _, _, t in info),
            },
            "naive": naive_result.as_dict(grid_frames),
            "optimized": opt_result.as_dict(grid_frames),
        }
        result["speedup"] = naive_result.wall_s / opt_result.wall_s if opt_result.wall_s > 0 else math.nan
        result["projection"] = _projection(result)
        if check:
            result["agreement"] = compare(work / "naive.h5", work / "optimized", [r.key for r in records])
        return result
    finally:
        torch.set_num_threads(threads_before)
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


def _projection(result: dict) -> dict:
    """Hours to extract each dataset on this device at the measured optimized speed."""
    per_video = result["optimized"]["s_per_video"]
    per_second = per_video / result["inputs"]["mean_duration_s"]
    return {
        name: {"videos": n, "hours": n * per_video / 3600, "mean_duration_s": d, "hours_by_duration": n * d * per_second / 3600}
        for name, (n, d) in DATASET_SIZES.items()
    }


def baseline_config(config):
    """``config`` with the speed options of ``BASELINE`` and the preset's detector input size."""
    from extract.config import PRESETS

    preset = PRESETS[config.preset]["detector"]
    detector = BASELINE["detector"] | {"min_size": preset["min_size"], "max_size": preset["max_size"]}
    update = {name: getattr(config, name).model_copy(update=values) for name, values in BASELINE.items()}
    return config.model_copy(update=update | {"detector": config.detector.model_copy(update=detector)})


def bench_inputs(work: Path, videos: Path | None, synthetic: int | None, seed: int) -> tuple[Path, str]:
    """The directory of videos to time and how to describe it: ``videos`` as given, or ``synthetic``
    seeded TGIF-like GIFs written under ``work``."""
    if synthetic is None:
        return Path(videos), f"videos from {videos}"
    write_synthetic(work / "videos", synthetic, seed=seed)
    return work / "videos", f"synthetic: {synthetic} TGIF-like GIFs (seed {seed})"
