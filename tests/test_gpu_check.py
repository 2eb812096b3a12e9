"""scripts/gpu_check.sh end to end on the CPU: the offline install over an existing torch, the
decode and full benches, and the table a GPU box prints (its CUDA steps skipped here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_self_check_installs_offline_and_prints_every_row(tmp_path):
    env = os.environ | {"OUT": str(tmp_path / "out"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--preset", "tiny", "--synthetic", "2",
         "--python", sys.executable, "--wheels", str(tmp_path / "no-wheels")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The package ran from the wheel installed into the check's venv, not from this checkout.
    assert f"from {tmp_path / 'out' / 'venv'}" in proc.stdout
    table = proc.stdout[proc.stdout.index("machine "):].splitlines()
    rows = {line.split()[0] for line in table if line.strip()}
    assert {"decode", "detector", "resnet", "i3d", "roialign", "wall", "peak", "model", "TGIF-QA", "cuda"} <= rows, table
    assert any(line.startswith("model inputs  1.00 computed per input needed") for line in table), table
    assert any(line.startswith("cuda tests    skipped (--device cpu)") for line in table), table
