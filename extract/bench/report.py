"""The bench's report: text lines for the terminal, and the JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from extract.bench.measure import BENCH_STAGES


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
    if opt["computed_per_needed"] is not None and naive["computed_per_needed"] is not None:
        lines.append(f"model inputs computed per input needed (ResNet and detector frames, I3D clips): naive "
                     f"{naive['computed_per_needed']:.2f} ({naive['model_inputs_computed']}), optimized "
                     f"{opt['computed_per_needed']:.2f} ({opt['model_inputs_computed']} for {opt['model_inputs_needed']})")
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


def write_json(result: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
