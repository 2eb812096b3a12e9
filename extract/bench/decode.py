"""``extract bench --decode-only``: decoding throughput alone, to size the decode side of a box.

The videos go through ``DecodePool`` as the local executor drives it (in order, four per child
queued, long videos' parts one ahead) and nothing else runs: no models, no writes. Each
setting (worker count, frame transfer) is timed on the same videos, the settings alternating
within each of ``repeat`` rounds so that a machine's changing load hits them alike; the
median round is reported. Start-up (forking the children, first imports) is not timed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from extract.datasets import folder
from extract.datasets.base import VideoRecord
from extract.decode_pool import DecodePool
from extract.executors.local import AHEAD_PER_WORKER
from extract.sampling import SamplingConfig
from extract.store import VideoResult
from extract.bench.run import bench_inputs
from extract.video import DecodeConfig, DecodedVideo

TRANSFERS = {"shm": True, "pickle": False}  # name -> DecodePool(shared_memory=...)
PROJECTED_WORKERS = 14  # a 16-core GPU box: default_decode_workers with 2 model workers


def run_decode_bench(
    *,
    videos: Path | None = None,
    synthetic: int | None = None,
    workers: Sequence[int] = (1,),
    transfers: Sequence[str] = ("shm",),
    repeat: int = 3,
    copies: int = 1,
    prefetch: int = 4,
    seed: int = 0,
    sampling: SamplingConfig = SamplingConfig(),
    config: DecodeConfig = DecodeConfig(),
) -> dict:
    """Decode the videos with each worker count and transfer; return the measurements.

    Args:
        videos / synthetic: a directory of videos, or the number of TGIF-like GIFs to write; one.
        copies: each video is decoded this many times per run (a few real files, more work).
        prefetch: the run's ``prefetch``; at least two videos per child are queued, as in a run.
    """
    if (videos is None) == (synthetic is None):
        raise ValueError("give exactly one of videos (a directory) or synthetic (a number of videos)")
    unknown = sorted(set(transfers) - set(TRANSFERS))
    if unknown or min(workers) < 1 or repeat < 1 or copies < 1:
        raise ValueError(f"need transfers in {list(TRANSFERS)}, workers >= 1, repeat >= 1, copies >= 1; "
                         f"got {list(transfers)}, {list(workers)}, {repeat}, {copies}")
    work = Path(tempfile.mkdtemp(prefix="extract-bench-decode-"))
    try:
        videos, source = bench_inputs(work, videos, synthetic, seed)
        records = folder.load(Path(videos))
        if not records:
            raise ValueError(f"no videos in {videos}")
        records = [VideoRecord(f"{r.key}#{i}", r.path) for i in range(copies) for r in records]
        settings = [(w, t) for w in workers for t in transfers]
        runs: dict[tuple[int, str], list[dict]] = {s: [] for s in settings}
        load_before = os.getloadavg()
        for _ in range(repeat):
            for w, t in settings:
                runs[(w, t)].append(_timed(records, w, TRANSFERS[t], prefetch, sampling, config))
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = []
    for (w, t), measured in runs.items():
        median = sorted(measured, key=lambda m: m["wall_s"])[len(measured) // 2]
        results.append({"workers": w, "transfer": t, **median,
                        "videos_per_s_runs": [m["videos_per_s"] for m in measured],
                        "videos_per_s_spread": (min(m["videos_per_s"] for m in measured),
                                                max(m["videos_per_s"] for m in measured))})
    return {"source": source, "videos": len(records), "copies": copies, "repeat": repeat,
            "cores": len(os.sched_getaffinity(0)), "load_before": load_before, "load_after": load_after,
            "nice": os.nice(0), "results": results}


def _timed(records, workers: int, shared_memory: bool, prefetch: int, sampling, config) -> dict:
    pool = DecodePool(sampling, config, workers, shared_memory=shared_memory)
    try:
        for handle, record in [(pool.submit(r), r) for r in records[:workers]]:  # warm-up: every child's first video
            _consume(pool, record, handle)
        ahead = max(prefetch, AHEAD_PER_WORKER * workers)
        children = pool.child_pids()
        child_cpu, cpu, start = _cpu_seconds(children), time.process_time(), time.perf_counter()
        pending, queue = deque(), iter(records)
        for record in queue:
            pending.append((record, pool.submit(record)))
            if len(pending) >= ahead:
                break
        grid = failed = 0
        while pending:
            record, handle = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(nxt)))
            n = _consume(pool, record, handle)
            grid, failed = grid + max(n, 0), failed + (n < 0)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        child_cpu = _cpu_seconds(children) - child_cpu
    finally:
        pool.close()
    return {"wall_s": wall, "videos_per_s": len(records) / wall, "grid_frames_per_s": grid / wall,
            "grid_frames": grid, "failed": failed, "parent_cpu_ms_per_video": 1000 * cpu / len(records),
            # decoding work per video whatever the machine's load: its inverse is the per-core rate
            "child_cpu_ms_per_video": 1000 * child_cpu / len(records)}


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _consume(pool: DecodePool, record: VideoRecord, handle) -> int:
    """Take one video (all its parts, for a streamed one); its grid frames, or -1 if it failed."""
    video, _ = pool.result(record, handle)
    if isinstance(video, VideoResult):
        return -1
    if not isinstance(video, DecodedVideo):
        try:
            for _part in video.parts():
                pass
        finally:
            video.close()
    return video.num_grid


def format_decode_report(result: dict) -> list[str]:
    """Text lines; the last one is ``decode: <x> videos/s with <N> workers``."""
    lines = [
        f"extract bench --decode-only: {result['source']}; {result['videos']} decodes per run "
        f"({result['copies']} cop{'y' if result['copies'] == 1 else 'ies'} of each), median of {result['repeat']} rounds",
        f"machine: {result['cores']} cores; load average {result['load_before'][0]:.1f} before, "
        f"{result['load_after'][0]:.1f} after; nice {result['nice']}",
        "",
        f"{'workers':>7} {'transfer':>8} {'videos/s':>9} {'(min-max)':>11} {'grid frames/s':>14} "
        f"{'child CPU ms/video':>19} {'parent CPU ms/video':>20} {'cores busy':>10}",
    ]
    for r in result["results"]:
        lo, hi = r["videos_per_s_spread"]
        lines.append(f"{r['workers']:>7} {r['transfer']:>8} {r['videos_per_s']:>9.2f} {f'{lo:.1f}-{hi:.1f}':>11} "
                     f"{r['grid_frames_per_s']:>14.0f} {r['child_cpu_ms_per_video']:>19.1f} {r['parent_cpu_ms_per_video']:>20.2f} "
                     f"{(r['child_cpu_ms_per_video'] + r['parent_cpu_ms_per_video']) * r['videos_per_s'] / 1000:>10.2f}")
    lines.append("(cores busy: the CPU the decoding got; below the worker count, the machine's other load held it back)")
    by = {(r["workers"], r["transfer"]): r for r in result["results"]}
    base = next(iter(by))  # the first worker count and transfer asked for
    for (w, t), r in sorted(by.items()):
        if w != base[0] and t == base[1]:
            lines.append(f"{w} workers against {base[0]} ({t}): {r['videos_per_s'] / by[base]['videos_per_s']:.2f}x")
    for w in sorted({w for w, _ in by}):
        if (w, "shm") in by and (w, "pickle") in by:
            shm, pickle = by[(w, "shm")], by[(w, "pickle")]
            lines.append(f"{w} workers, shared memory against pickle: {shm['videos_per_s'] / pickle['videos_per_s']:.2f}x "
                         f"videos/s, {1000 / shm['videos_per_s']:.1f} against {1000 / pickle['videos_per_s']:.1f} ms per video")
    one = by[base]
    if one["child_cpu_ms_per_video"] > 0:
        per_core = 1000 / one["child_cpu_ms_per_video"]
        ceiling = 1000 / max(one["parent_cpu_ms_per_video"], 1e-9)
        lines.append(f"per core (1 / child CPU per video, load-independent): {per_core:.1f} videos/s, "
                     f"{per_core * one['grid_frames'] / result['videos']:.0f} grid frames/s; the parent's share caps "
                     f"the pool at ~{ceiling:.0f} videos/s ({one['transfer']})")
        rate = min(PROJECTED_WORKERS * per_core, ceiling)
        lines.append(f"projection, 16 cores ({PROJECTED_WORKERS} decode workers, the default beside 2 GPU model "
                     f"workers): ~{rate:.0f} videos/s, TGIF-QA (71,741 GIFs) decoded in ~{71741 / rate / 60:.1f} min "
                     "(projection: per-core rate times workers, if the cores are real and idle)")
    failed = max(r["failed"] for r in result["results"])
    if failed:
        lines.append(f"({failed} video(s) failed to decode and count as done)")
    last = by[max(by, key=lambda k: (k[0], k[1] == base[1]))]
    lines.append(f"decode: {last['videos_per_s']:.2f} videos/s with {last['workers']} workers")
    return lines
