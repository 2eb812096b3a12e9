"""What a bench path measured: wall time, per-stage seconds, peak memory, the machine."""

from __future__ import annotations

import platform
import resource
from dataclasses import dataclass

BENCH_STAGES = ("decode", "detector", "resnet", "i3d", "roialign", "linking", "write")


class Peak:
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
class PathResult:
    """One path's run: wall seconds, videos done, its ``StageTimer``, peak memory, torch threads,
    and the model inputs its extractor computed and needed (``FeatureExtractor.computed``)."""

    wall_s: float
    done: int
    timer: object
    peak: Peak
    threads: int
    computed: int = 0
    needed: int = 0

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
            "model_inputs_computed": self.computed,
            "model_inputs_needed": self.needed,
            "computed_per_needed": self.computed / self.needed if self.needed else None,
        }


def machine(device) -> dict:
    import torch

    from extract.features.runtime import cpu_count

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"device": str(device), "cpu": cpu, "cores": cpu_count(), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
