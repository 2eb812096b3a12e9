"""Importing the MASN package downloads nothing (the public code calls nltk.download at import) and
metrics and layout stay light: torch loads only with the trainer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import socket, sys, urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access at import time: {args!r}")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    urllib.request.urlopen = refuse

    import extract.videoqa
    from extract.videoqa.metrics import format_table, evaluate_nextqa
    from extract.masn_index import MASN_INDEX_FILES
    assert "torch" not in sys.modules, "metrics and layout must not import torch"
    import extract.videoqa.train, extract.videoqa.evaluate, extract.videoqa.models.masn, extract.videoqa.glove, extract.videoqa.plot
    from extract.videoqa.train import train, TrainConfig
    from extract.videoqa.models.masn import ModelConfig
    print("ok")
""")


def test_imports_are_offline_and_light():
    repo = Path(__file__).resolve().parents[1]  # `python -c` imports from its working directory
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
