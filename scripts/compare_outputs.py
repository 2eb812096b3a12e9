"""Compare two extract output directories bit for bit: ``python scripts/compare_outputs.py A B``.

Every done video's every array must be identical (NaN-aware); exit 0 when they are, 1 with
the differences listed otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from extract.compare import differences, read_features


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_outputs.py A B", file=sys.stderr)
        return 2
    a, b = map(Path, argv)
    problems = differences(a, b)
    for line in problems:
        print(line)
    videos = read_features(b)
    arrays = sum(len(v) for v in videos.values())
    print(f"{'DIFFERENT' if problems else 'identical'}: {len(videos)} videos, {arrays} arrays compared"
          + (f", {len(problems)} differences" if problems else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
