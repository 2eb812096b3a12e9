"""``extract bench``: throughput per stage, against a naive baseline in the same run.

The same input set goes through two extractors that share their weights:

- **optimized**: the local executor as ``extract run`` uses it - a decode thread ahead of the
  models, videos grouped ``shard_videos`` at a time with their steps sharing fixed-size
  batches, one ResNet and one detector pass per distinct frame, model tasks on two threads
  (each with half the cores on a CPU), NDHWC I3D, sharded HDF5 output;
- **naive**: the way public extraction scripts work - one video at a time, decoded, then each
  model in turn on that video's frames as one float32 NCHW batch (no padding), the detector
  one frame at a time and once per use (MASN top-10 and trajectory candidates separately),
  ResNet again for the trajectory frames, no overlap, one HDF5 file.

Each stage is timed with :class:`extract.timing.StageTimer` (CUDA synchronized at section
edges). In the optimized path stages overlap (decode runs in its own thread, and the model
tasks on two), so their times add up to more than the wall time; shares are of the summed
stage time. The ratio of the two wall times is the last line of the report.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.atomic import atomic_write_json

__all__ = ["BENCH_STAGES", "DATASET_SIZES", "NaiveExtractor", "format_report", "run_bench", "write_synthetic"]

BENCH_STAGES = ("decode", "detector", "resnet", "i3d", "roialign", "linking", "write")
# Config fields that only concern speed, by section: the naive baseline always runs with these
# values (and with the preset's detector input size, see ``_baseline``).
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


# --------------------------------------------------------------------------- inputs


def write_synthetic(directory: Path, count: int, *, seed: int = 0) -> list[Path]:
    """Write ``count`` TGIF-like GIFs into ``directory``: 225-360 px sides, 2-6 s at 7-17 fps,
    2-4 moving shapes over a gradient. The same ``seed`` writes the same files."""
    from PIL import Image, ImageDraw

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = random.Random(f"vqa-extract-bench:{seed}:{i}")
        w, h = rng.randint(225, 360), rng.randint(225, 360)
        fps = rng.randint(7, 17)
        frames_n = max(2, round(rng.uniform(2.0, 6.0) * fps))
        base = [rng.randint(0, 255) for _ in range(3)]
        palette = [(base[c] + step * k) % 256 for k in range(32) for c, step in enumerate((4, 2, -3))]
        shapes = []
        for j in range(rng.randint(2, 4)):
            palette += [rng.randint(0, 255) for _ in range(3)]
            r = rng.randint(15, 50)
            shapes.append((rng.choice("ore"), r, rng.uniform(r, w - r), rng.uniform(r, h - r),
                           rng.uniform(-80, 80), rng.uniform(-80, 80), 32 + j))
        palette += [0] * (768 - len(palette))
        yy, xx = np.mgrid[0:h, 0:w]
        background = ((xx * 24 // w + yy * 8 // h) % 32).astype(np.uint8)
        images = []
        for f in range(frames_n):
            t = f / fps
            im = Image.fromarray(background, mode="P")
            im.putpalette(palette)
            draw = ImageDraw.Draw(im)
            for kind, r, x0, y0, vx, vy, color in shapes:
                x, y = (x0 + vx * t) % w, (y0 + vy * t) % h
                if kind == "o":
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
                elif kind == "r":
                    draw.rectangle([x - r, y - r, x + r, y + r], fill=color)
                else:
                    draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color)
            images.append(im)
        path = directory / f"synthetic_{i:04d}.gif"
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(100 / fps) * 10, loop=0, optimize=False)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- naive baseline


class NaiveExtractor:
    """The baseline: the extractor's models (float32, NCHW copies of ResNet and I3D, the
    detector shared) applied the straightforward way, one video and one model at a time.

    ``extract(video)`` returns the same arrays as ``FeatureExtractor`` for one video.
    """

    def __init__(self, extractor, *, timer=None) -> None:
        import torch

        from extract.models.detector import Detector
        from extract.timing import NO_TIMER

        self.config, self.stages, self.linking = extractor.config, set(extractor.stages), extractor.linking
        self.class_names = extractor.class_names
        self.device = extractor.device
        self.timer = timer or NO_TIMER

        def plain(module):
            return None if module is None else copy.deepcopy(module).to(memory_format=torch.contiguous_format).float()

        self.appearance, self.motion = plain(extractor.appearance), plain(extractor.motion)
        d = extractor.detector
        self.detector = None if d is None else Detector(d.model, agnostic_nms_iou=d.agnostic_nms_iou, batch_size=1, amp=False)

    def _floats(self, frames: np.ndarray):
        """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1] on the device."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255

    def _resize(self, images, size: int):
        import torch.nn.functional as F

        # NCHW, as the public scripts feed their models (the resize keeps the frames' NHWC strides).
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).contiguous()

    def _detect(self, frames: np.ndarray, top_k: int) -> list:
        with self.timer("detector"):
            return [self.detector([image], top_k=top_k)[0] for image in self._floats(frames)]

    def _roi(self, fmap, dets, video, size: int):
        from extract.geometry import roi_mean_features, scale_boxes

        with self.timer("roialign"):
            boxes = [scale_boxes(d.boxes, (video.width, video.height), (size, size)) for d in dets]
            feats = roi_mean_features(fmap, boxes, image_size=(size, size), output_size=self.config.roi.output_size,
                                      sampling_ratio=self.config.roi.sampling_ratio)
            return list(feats.split([len(b) for b in boxes]))

    def extract(self, video) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            return self._extract(video)

    def _extract(self, video) -> dict[str, np.ndarray]:
        import torch

        from extract.geometry import pad_rows, spatial_features
        from extract.linking import link_detections
        from extract.trajectories import trajectory_arrays

        out: dict[str, np.ndarray] = {}
        n, size = self.config.detector.num_objects, self.config.appearance.size
        msize = self.config.motion.size

        def stack(rows) -> np.ndarray:
            return torch.stack([pad_rows(r, n) for r in rows]).cpu().numpy()

        dets = None
        if {"appearance", "objects"} & self.stages:
            frames = video.grid_frames(video.steps)
            with self.timer("resnet"):
                pooled, c5 = self.appearance(self._resize(self._floats(frames), size))
            out["appearance"] = pooled.cpu().numpy().astype(np.float32)
            if "objects" in self.stages:
                dets = self._detect(frames, n)
                objects = self._roi(c5, dets, video, size)
                out["image_features"] = stack(objects).astype(np.float32)
                out["spatial_features"] = stack([spatial_features(d.boxes, video.width, video.height) for d in dets]).astype(np.float32)
                out["detections/boxes"] = stack([d.boxes for d in dets]).astype(np.float32)
                out["detections/scores"] = stack([d.scores for d in dets]).astype(np.float32)
                out["detections/labels"] = stack([d.labels for d in dets]).astype(np.int64)
                out["detections/num_boxes"] = np.array([len(d.boxes) for d in dets], dtype=np.int64)
            if "appearance" not in self.stages:
                del out["appearance"]
        if "motion" in self.stages:
            with self.timer("i3d"):
                clips = torch.stack([self._resize(self._floats(video.grid_frames(w)), msize).permute(1, 0, 2, 3)
                                     for w in video.windows])  # [T, 3, L, S, S]
                fmap = self.motion(clips).mean(dim=2)  # [T, 2048, h, w]
            out["motion"] = fmap.mean(dim=(2, 3)).cpu().numpy().astype(np.float32)
            if dets is not None:
                out["motion_objects"] = stack(self._roi(fmap, dets, video, msize)).astype(np.float32)
        if "trajectories" in self.stages:
            frames = video.grid_frames(video.trajectory_steps)
            tdets = self._detect(frames, self.config.detector.trajectory_candidates)
            with self.timer("resnet"):
                _, c5 = self.appearance(self._resize(self._floats(frames), size))
            feats = self._roi(c5, tdets, video, size)
            with self.timer("linking"):
                boxes = [d.boxes.cpu() for d in tdets]
                trajs = link_detections(boxes, [d.scores.cpu() for d in tdets], [d.labels.cpu() for d in tdets], self.linking)
                arrays = trajectory_arrays(trajs, [f.cpu() for f in feats], boxes,
                                           (video.trajectory_steps / video.sampling.fps).tolist(), video.duration,
                                           self.class_names)
            out.update({f"trajectories/{name}": array for name, array in arrays.items()})
        return out


# --------------------------------------------------------------------------- measuring


class _Peak:
    """Peak resident memory of this process (and of the GPU) over a ``with`` block.

    Linux: VmHWM after resetting it through /proc/self/clear_refs; elsewhere ru_maxrss, which
    cannot be reset (then the peak is over the process so far).
    """

    def __init__(self, device) -> None:
        self.device = device
        self.host_mb = self.gpu_mb = None
        self.resettable = False

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.host_mb = _vm_hwm_mb() if self.resettable else None
        if self.host_mb is None:
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.host_mb = maxrss / 1024 if platform.system() != "Darwin" else maxrss / 2**20
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            self.gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class _PathResult:
    wall_s: float
    done: int
    timer: object
    peak: _Peak
    threads: int

    def as_dict(self, grid_frames: int) -> dict:
        stages = {name: self.timer.seconds.get(name, 0.0) for name in BENCH_STAGES}
        busy = sum(stages.values())
        per = max(self.done, 1)
        return {
            "wall_s": self.wall_s,
            "videos": self.done,
            "videos_per_s": self.done / self.wall_s if self.wall_s > 0 else 0.0,
            "grid_frames_per_s": grid_frames / self.wall_s if self.wall_s > 0 else 0.0,
            "s_per_video": self.wall_s / per,
            "torch_threads": self.threads,
            "stages": {
                name: {"s_per_video": s / per, "share": s / busy if busy > 0 else 0.0, "calls": self.timer.calls.get(name, 0)}
                for name, s in stages.items()
            },
            "stage_sum_s_per_video": busy / per,
            "other_s_per_video": max(0.0, self.wall_s - busy) / per,
            "peak_host_mb": self.peak.host_mb,
            "peak_host_scope": "this path" if self.peak.resettable else "process so far",
            "peak_gpu_mb": self.peak.gpu_mb,
        }


def _run_naive(naive: NaiveExtractor, records, config, h5_path: Path, timer, device) -> _PathResult:
    import h5py

    from extract.store import shard_path
    from extract.video import decode

    naive.timer = timer
    done = 0
    with _Peak(device) as peak:
        start = time.perf_counter()
        with h5py.File(h5_path, "w") as f:
            for record in records:
                with timer("decode"):
                    try:  # whole videos, as public scripts decode them
                        video = decode(record.path, config.sampling, config.decode)
                    except Exception:  # noqa: BLE001 - a failed video costs both paths the same
                        continue
                features = naive.extract(video)
                with timer("write"):
                    for name, array in features.items():
                        f.create_dataset(shard_path(name, record.key), data=array)
                done += 1
        wall = time.perf_counter() - start
    return _PathResult(wall, done, timer, peak, 0)


def _run_optimized(config, extractor, records, out_dir: Path, timer, device) -> _PathResult:
    from extract.executors.local import execute_local
    from extract.store import OutputDir, ShardSink

    out = OutputDir(out_dir)
    sink = ShardSink(out, {"config": config.model_dump_json(), "bench": "optimized"})
    done = [0]

    def on_result(result) -> None:
        done[0] += result.ok

    extractor.timer = timer
    try:
        with _Peak(device) as peak:
            start = time.perf_counter()
            execute_local(config, records, extractor, sink, on_result)
            wall = time.perf_counter() - start
    finally:
        from extract.timing import NO_TIMER

        extractor.timer = NO_TIMER
    return _PathResult(wall, done[0], timer, peak, 0)


def _compare(naive_h5: Path, out_dir: Path, keys: Sequence[str]) -> dict:
    """How far the optimized features are from the naive ones.

    Object features are compared on the steps whose boxes are identical in both paths, and
    trajectory features on the videos whose trajectory boxes are: with random weights every
    box scores alike, and the thread count can decide the order of ties.
    """
    import h5py

    from extract.store import OutputDir, shard_path

    manifest = OutputDir(out_dir).done()
    worst: dict[str, float] = {}
    same_steps = steps = same_videos = videos = 0

    def update(name: str, a: np.ndarray, b: np.ndarray) -> None:
        if a.shape != b.shape:
            worst[name] = math.inf
        elif a.size:
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(a - b) / (1e-4 + 1e-4 * np.abs(a)))))

    with h5py.File(naive_h5, "r") as naive:
        for key in keys:
            if key not in manifest:
                continue
            with h5py.File(out_dir / "shards" / manifest[key]["shard"], "r") as opt:
                def pair(name: str):
                    path = shard_path(name, key)
                    return (naive[path][()], opt[path][()]) if path in naive and path in opt else (None, None)

                for name in ("appearance", "motion"):
                    a, b = pair(name)
                    if a is not None:
                        update(name, a, b)
                boxes_a, boxes_b = pair("detections/boxes")
                if boxes_a is not None and boxes_a.shape == boxes_b.shape:
                    same = np.all(boxes_a == boxes_b, axis=(1, 2))
                    same_steps, steps = same_steps + int(same.sum()), steps + len(same)
                    for name in ("image_features", "motion_objects"):
                        a, b = pair(name)
                        if a is not None:
                            update(name, a[same], b[same])
                traj_a, traj_b = pair("trajectories/boxes")
                if traj_a is not None:
                    videos += 1
                    if traj_a.shape == traj_b.shape and np.array_equal(traj_a, traj_b, equal_nan=True):
                        same_videos += 1
                        update("trajectories/features", *pair("trajectories/features"))
    return {
        "worst": worst,  # max |optimized - naive| / (1e-4 + 1e-4 |naive|): <= 1 agrees at atol = rtol = 1e-4
        "steps_with_identical_boxes": same_steps,
        "steps": steps,
        "videos_with_identical_trajectories": same_videos,
        "videos_with_trajectories": videos,
    }


# --------------------------------------------------------------------------- the benchmark


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

    from extract.config import deep_merge, load_config
    from extract.names import STAGES
    from extract.datasets import folder
    from extract.features import build_extractor, configure_threads, cpu_count, resolve_all_weights, resolve_device
    from extract.timing import StageTimer
    from extract.video import decode

    if (videos is None) == (synthetic is None):
        raise ValueError("give exactly one of videos (a directory) or synthetic (a number of videos)")
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="extract-bench-")) if own_dir else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    try:
        if synthetic is not None:
            source = f"synthetic: {synthetic} TGIF-like GIFs (seed {seed})"
            videos = work / "videos"
            write_synthetic(videos, synthetic, seed=seed)
        else:
            source = f"videos from {videos}"
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
        extractor = build_extractor(config, config.stages, resolved, config.linking)
        baseline = _baseline(config)
        if baseline == config:
            naive = NaiveExtractor(extractor)
        else:  # speed options given: the baseline gets models built without them
            naive = NaiveExtractor(build_extractor(baseline, config.stages, resolved, config.linking))

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

        # Warm-up (untimed): allocator, oneDNN primitives, cuDNN autotuning, lazy imports.
        torch.set_num_threads(naive_threads or cpu_count())
        naive.extract(warm)
        configure_threads(config)
        extractor([warm])

        make_timer = lambda: StageTimer(cuda_sync=dev.type == "cuda")  # noqa: E731
        torch.set_num_threads(naive_threads or cpu_count())  # public scripts: torch's default, every core
        naive_result = _run_naive(naive, records, config, work / "naive.h5", make_timer(), dev)
        naive_result.threads = torch.get_num_threads()
        opt_threads = configure_threads(config)
        opt_result = _run_optimized(config, extractor, records, work / "optimized", make_timer(), dev)
        opt_result.threads = opt_threads

        result = {
            "machine": _machine(dev),
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
            result["agreement"] = _compare(work / "naive.h5", work / "optimized", [r.key for r in records])
        return result
    finally:
        torch.set_num_threads(threads_before)
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


def _machine(device) -> dict:
    import torch

    from extract.features import cpu_count

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    machine = {"device": str(device), "cpu": cpu, "cores": cpu_count(), "torch": torch.__version__}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return machine


def _projection(result: dict) -> dict:
    """Hours to extract each dataset on this device at the measured optimized speed."""
    per_video = result["optimized"]["s_per_video"]
    per_second = per_video / result["inputs"]["mean_duration_s"]
    return {
        name: {"videos": n, "hours": n * per_video / 3600, "mean_duration_s": d, "hours_by_duration": n * d * per_second / 3600}
        for name, (n, d) in DATASET_SIZES.items()
    }


# --------------------------------------------------------------------------- report


def format_report(result: dict) -> list[str]:
    """The report as text lines; the last one is ``speedup over naive: <x>x``."""
    m, inputs = result["machine"], result["inputs"]
    naive, opt = result["naive"], result["optimized"]
    where = f"{m['device']} ({m.get('gpu') or m['cpu']}, {m['cores']} CPU cores, torch {m['torch']})"
    lines = [
        f"extract bench: preset {result['preset']}, stages {','.join(result['stages'])}, batch {result['batch_size']}, "
        f"weights {result['weights']}" + (" (RANDOM: timing only)" if result["weights"] == "random" else ""),
        f"device: {where}",
        f"inputs: {inputs['source']}; {inputs['decoded']}/{inputs['videos']} decoded, mean {inputs['mean_duration_s']:.2f} s, "
        f"{inputs['grid_frames']} grid frames (6 fps), {inputs['steps']} appearance steps",
        f"torch threads: naive {naive['torch_threads']}; optimized {opt['torch_threads']} in each of "
        f"{result['config']['runtime']['model_workers']} model workers",
        "",
        f"{'stage':<10} {'naive s/video':>14} {'share':>7} {'optimized s/video':>18} {'share':>7}",
    ]
    for name in BENCH_STAGES:
        a, b = naive["stages"][name], opt["stages"][name]
        lines.append(f"{name:<10} {a['s_per_video']:>14.4f} {a['share']:>7.1%} {b['s_per_video']:>18.4f} {b['share']:>7.1%}")
    lines.append(f"{'(sum)':<10} {naive['stage_sum_s_per_video']:>14.4f} {'':>7} {opt['stage_sum_s_per_video']:>18.4f}")
    lines.append(f"{'wall':<10} {naive['s_per_video']:>14.4f} {'':>7} {opt['s_per_video']:>18.4f}")
    lines.append("(optimized stages overlap - decode and the model tasks run on several threads - so their sum can exceed wall)")
    lines.append("")

    def mem(path: dict) -> str:
        host = f"{path['peak_host_mb']:.0f} MiB host" + ("" if path["peak_host_scope"] == "this path" else " (process peak)")
        return host + (f", {path['peak_gpu_mb']:.0f} MiB GPU" if path["peak_gpu_mb"] is not None else "")

    for label, path in (("naive", naive), ("optimized", opt)):
        lines.append(
            f"{label:<9}: {path['videos_per_s']:.3f} videos/s, {path['grid_frames_per_s']:.2f} grid frames/s, "
            f"{path['wall_s']:.1f} s wall for {path['videos']} videos; peak {mem(path)}"
        )
    agreement = result.get("agreement")
    if agreement:
        worst = ", ".join(f"{k} {v:.2g}" for k, v in agreement["worst"].items())
        lines.append(f"features, optimized vs naive (max error in units of atol=rtol=1e-4; <= 1 agrees): {worst}")
        lines.append(f"  boxes identical in {agreement['steps_with_identical_boxes']}/{agreement['steps']} steps, trajectories in "
                     f"{agreement['videos_with_identical_trajectories']}/{agreement['videos_with_trajectories']} videos "
                     "(objects compared there)"
                     + ("; random weights score all boxes alike, so tie order can follow the thread count"
                        if result["weights"] == "random" else ""))
    proj = result["projection"]
    lines.append(
        "projection on this device, optimized, extrapolated from these inputs (mean "
        f"{inputs['mean_duration_s']:.1f} s per video): "
        + "; ".join(f"{name} ({p['videos']:,} videos) {p['hours']:.1f} h" for name, p in proj.items())
    )
    lines.append(
        "  scaled by mean video length instead: "
        + "; ".join(f"{name} (~{p['mean_duration_s']:g} s) {p['hours_by_duration']:.1f} h" for name, p in proj.items())
    )
    lines.append(f"speedup over naive: {result['speedup']:.2f}x")
    return lines


def _baseline(config):
    """``config`` with the speed options of ``BASELINE`` and the preset's detector input size."""
    from extract.config import PRESETS

    preset = PRESETS[config.preset]["detector"]
    detector = BASELINE["detector"] | {"min_size": preset["min_size"], "max_size": preset["max_size"]}
    update = {name: getattr(config, name).model_copy(update=values) for name, values in BASELINE.items()}
    return config.model_copy(update=update | {"detector": config.detector.model_copy(update=detector)})


def write_json(result: dict, path: Path) -> None:
    atomic_write_json(path, result, indent=2, default=str)
