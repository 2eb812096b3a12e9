#!/usr/bin/env bash
# Download the wheels that scripts/gpu_check.sh installs on a GPU box without internet access
# (Python 3.12, torch and torchvision preinstalled) into DEST (default .whl/), from the list
# scripts/gpu_wheels.txt. Run it on a machine that reaches PyPI; then carry DEST along.
#   [SKIP="av ..."] scripts/fetch_gpu_wheels.sh [DEST]
# All of them: ~72 MB, av 36 MB of it. GIF inputs never import av (mp4 inputs do): SKIP=av
# fits a 64 MiB carry limit when the check runs on GIFs only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/../.whl}"
python="${PYTHON:-python3}"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p "$dest"

while read -r spec kind; do
    case "$spec" in ''|'#'*) continue ;; esac
    case " ${SKIP:-} " in *" ${spec%%==*} "*) echo "skipping $spec"; continue ;; esac
    if [ "${kind:-}" = sdist ]; then
        # Source only on PyPI and pure Python: build a py3-none-any wheel here.
        "$python" -m pip wheel --quiet --no-deps -w "$dest" "$spec"
    else
        "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp "${platforms[@]}" -d "$dest" "$spec"
    fi
done < "$here/gpu_wheels.txt"

count=$(find "$dest" -maxdepth 1 -name '*.whl' | wc -l)
echo "$count wheels in $dest ($(du -sh "$dest" | cut -f1))"
