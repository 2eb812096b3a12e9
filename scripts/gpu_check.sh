#!/usr/bin/env bash
# The GPU check: install this package offline, run the CUDA-marked tests, time decoding alone
# and the full bench (paper preset, random weights) with the GPU sampled, and print a table.
# Meant to finish in under 8 minutes on one H100/H200 with 16 cores.
#
#   scripts/gpu_check.sh [--device cuda|cpu] [--synthetic N] [--preset paper|tiny] [--python PY]
#                        [--wheels DIR] [--no-install]
#
# --device cpu --preset tiny runs every step without a GPU (no nvidia-smi, no CUDA tests): a
# check of the script itself. Everything goes under $OUT (default ./gpu_check_out): logs, JSON, the table.
# The box's preinstalled Python (torch, torchvision) is reused through a venv that sees its
# site-packages; the missing packages come from wheels in DIR (scripts/fetch_gpu_wheels.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
device=cuda
synthetic=32
preset=paper
python="${PYTHON:-python3}"
wheels="$repo/.whl"
install=1
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --synthetic) synthetic="$2"; shift 2 ;;
        --preset) preset="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --wheels) wheels="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cuda:*|cpu) ;; *) echo "gpu_check: --device cuda[:N] or cpu, got $device" >&2; exit 2 ;; esac
out="${OUT:-$repo/gpu_check_out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/gpu_check.log"
: > "$log"
say() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$log"; }
started=$SECONDS
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-}" PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
[ -n "$OMP_NUM_THREADS" ] || unset OMP_NUM_THREADS

# 1. Environment: a venv over the box's own site-packages (torch stays the preinstalled one).
venv="$out/venv"
if [ "$install" = 1 ]; then
    say "venv $venv over $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    base_site="$("$python" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))')"
    venv_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$base_site" > "$venv_site/gpu_check_base.pth"
    if [ -d "$wheels" ] && compgen -G "$wheels/*.whl" > /dev/null; then
        say "installing $(find "$wheels" -maxdepth 1 -name '*.whl' | wc -l) wheels from $wheels (--no-deps --no-index)"
        "$venv/bin/python" -m pip install --quiet --no-deps --no-index "$wheels"/*.whl >> "$log" 2>&1
    else
        say "no wheels in $wheels: the base environment must have every dependency"
    fi
    # Built by the base Python, whose setuptools (a torch dependency) is recent: a venv's own
    # bundled one (Python <= 3.11) may lack bdist_wheel, and build isolation would download.
    say "installing vqa-extract (--no-deps, offline)"
    rm -rf "$out/dist"
    "$python" -m pip wheel --quiet --no-deps --no-index --no-build-isolation -w "$out/dist" "$repo" >> "$log" 2>&1
    "$venv/bin/python" -m pip install --quiet --no-deps --no-index "$out"/dist/vqa_extract-*.whl >> "$log" 2>&1
    py="$venv/bin/python"
else
    py="$python"
fi
# Run from outside the checkout so that the installed package, not the source tree, is tested.
cd "$out"
"$py" - <<'EOF' 2>&1 | tee -a "$log"
import importlib.metadata as md, torch, torchvision, extract
print(f"python {__import__('sys').version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"CUDA {torch.version.cuda} available={torch.cuda.is_available()}, vqa-extract {md.version('vqa-extract')} from {extract.__file__}")
if torch.cuda.is_available():
    print("gpu:", torch.cuda.get_device_name(0))
EOF
if [ "$device" != cpu ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
fi

# 2. The CUDA-marked tests (CPU vs CUDA, fp32 vs bf16, batched detector): whatever exists.
tests_status="skipped (--device cpu)"
if [ "$device" != cpu ]; then
    say "pytest -m cuda"
    set +e
    (cd "$repo" && timeout 240 "$py" -m pytest -q -p no:cacheprovider -m cuda --junitxml "$out/cuda_tests.xml" tests) \
        > "$out/cuda_tests.log" 2>&1
    rc=$?
    set -e
    tail -n 5 "$out/cuda_tests.log" | tee -a "$log"
    case $rc in
        0) tests_status="passed" ;;
        5) tests_status="none collected (no cuda-marked tests)" ;;
        124) tests_status="TIMED OUT after 240 s" ;;
        *) tests_status="FAILED (rc $rc; see cuda_tests.log)" ;;
    esac
fi

# 3. Decoding alone, to size the decode side: 1 worker, and every core.
cores="$("$py" -c 'import os; print(len(os.sched_getaffinity(0)))')"
say "bench --decode-only, 1 and $cores workers"
timeout 150 "$py" -m extract bench --decode-only --synthetic "$synthetic" --decode-workers "1,$cores" --repeat 1 \
    --json "$out/decode.json" > "$out/decode.log" 2>&1 || say "decode bench failed (rc $?; see decode.log)"
tail -n 3 "$out/decode.log" | tee -a "$log"

# 4. The full bench, the GPU sampled every 500 ms meanwhile.
sampler=""
if [ "$device" != cpu ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
        > "$out/gpu_samples.csv" 2>/dev/null &
    sampler=$!
fi
stop_sampler() { if [ -n "$sampler" ]; then kill "$sampler" 2> /dev/null || true; wait "$sampler" 2> /dev/null || true; sampler=""; fi; }
trap stop_sampler EXIT
say "bench --preset $preset --weights random --device $device --synthetic $synthetic"
bench_start=$(date +%s.%N)
timeout 330 "$py" -m extract bench --preset "$preset" --weights random --device "$device" --synthetic "$synthetic" \
    --no-check --json "$out/bench.json" > "$out/bench.log" 2>&1 || say "bench failed (rc $?; see bench.log)"
bench_end=$(date +%s.%N)
stop_sampler
tail -n 4 "$out/bench.log" | tee -a "$log"

# 5. The table (also in summary.txt / summary.json).
"$py" - "$out" "$bench_start" "$bench_end" "$tests_status" "$((SECONDS - started))" <<'EOF' | tee "$out/summary.txt"
import csv, datetime, json, sys
from pathlib import Path

out, start, end, tests, elapsed = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
load = lambda name: json.loads((out / name).read_text()) if (out / name).is_file() else None
bench, decode = load("bench.json"), load("decode.json")
rows, summary = [], {"cuda_tests": tests}
GOALS = {"detector": "400 frames/s", "resnet": "2,000 frames/s", "i3d": "1,000 clips/s"}  # TGIF-QA in 15 min
if bench:
    opt, inputs = bench["optimized"], bench["inputs"]
    m = bench["machine"]
    rows.append(("machine", f"{m.get('gpu') or m['cpu']}, {m['cores']} cores, torch {m['torch']}", ""))
    rows.append(("inputs", f"{inputs['videos']} synthetic GIFs, {inputs['grid_frames']} grid frames, {inputs['steps']} steps", ""))
    steps, videos = inputs["steps"], max(opt["videos"], 1)
    for name in ("decode", "detector", "resnet", "i3d", "roialign", "linking", "write"):
        s = opt["stages"][name]["s_per_video"] * videos
        # A step is one ResNet frame and one I3D clip; the detector sees at least as many frames.
        rate = f"{steps / s:,.0f} steps/s of busy time" if s > 0 else "-"
        rows.append((name, f"{opt['stages'][name]['s_per_video'] * 1000:.1f} ms/video, {rate}", GOALS.get(name, "")))
    rows.append(("wall", f"{opt['videos_per_s']:.2f} videos/s, {opt['grid_frames_per_s']:,.0f} grid frames/s "
                         f"({bench['speedup']:.2f}x naive)", ""))
    gpu = opt.get("peak_gpu_mb")
    rows.append(("peak memory", f"{opt['peak_host_mb']:.0f} MiB host" + (f", {gpu:.0f} MiB GPU (torch)" if gpu else ""), ""))
    rows.append(("model inputs", f"{opt['computed_per_needed']:.2f} computed per input needed "
                 f"({opt['model_inputs_computed']:,} frames and clips)", "1.00"))
    tgif = bench["projection"]["TGIF-QA"]
    rows.append(("TGIF-QA", f"{tgif['hours'] * 60:.1f} min for {tgif['videos']:,} videos at this rate (projection)", "15 min"))
    summary["bench"] = {"videos_per_s": opt["videos_per_s"], "tgif_minutes": tgif["hours"] * 60, "peak_gpu_mb": gpu}
samples = []
if (out / "gpu_samples.csv").is_file():
    for rec in csv.reader((out / "gpu_samples.csv").read_text().splitlines()):
        try:
            t = datetime.datetime.strptime(rec[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((t, float(rec[1]), float(rec[2])))
        except (ValueError, IndexError):
            continue
if samples:
    # The optimized path runs last, for its wall time, until the bench ends.
    window = [s for s in samples if bench and s[0] >= end - bench["optimized"]["wall_s"] - 1]
    busy = [u for _, u, _ in window] or [u for _, u, _ in samples]
    rows.append(("GPU busy", f"{sum(busy) / len(busy):.0f}% mean over the optimized run ({len(busy)} samples), "
                             f"max memory used {max(m for *_, m in samples):.0f} MiB (nvidia-smi)", ">= 85%"))
    summary["gpu_busy_percent"] = sum(busy) / len(busy)
if decode:
    for r in decode["results"]:
        rows.append((f"decode x{r['workers']}", f"{r['videos_per_s']:.1f} videos/s, {r['grid_frames_per_s']:,.0f} grid frames/s "
                     f"-> TGIF-QA decode {71741 / r['videos_per_s'] / 60:.1f} min", ""))
    summary["decode"] = {str(r["workers"]): r["videos_per_s"] for r in decode["results"]}
rows.append(("cuda tests", tests, ""))
rows.append(("elapsed", f"{elapsed} s", "< 480 s"))
width = max(len(r[0]) for r in rows)
print("\n" + "\n".join(f"{a:<{width}}  {b}" + (f"   [goal {c}]" if c else "") for a, b, c in rows))
(out / "summary.json").write_text(json.dumps(summary, indent=2))
EOF
