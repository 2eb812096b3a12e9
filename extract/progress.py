"""Progress: a rich bar on a terminal, plain log lines otherwise (CI, files, Ray logs)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("extract")


class Progress:
    """Counts videos as they finish.

    Args:
        total: videos to process in this run.
        every: on a non-terminal, log a line every this many videos (and at the end).
    """

    def __init__(self, total: int, *, every: int = 10, enabled: bool | None = None) -> None:
        self.total, self.every = total, every
        self.done = self.failed = 0
        self.start = time.monotonic()
        self._bar = None
        if enabled if enabled is not None else sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn("[bold]extract"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(), transient=False,
            )
            self._task = self._bar.add_task("videos", total=total, status="")
            self._bar.start()

    def advance(self, ok: bool, key: str = "") -> None:
        self.done += ok
        self.failed += not ok
        n = self.done + self.failed
        status = f"done {self.done} failed {self.failed}"
        if self._bar is not None:
            self._bar.update(self._task, completed=n, status=status)
        elif n % self.every == 0 or n == self.total:
            elapsed = time.monotonic() - self.start
            log.info("%d/%d videos (%s) %.1f s elapsed%s", n, self.total, status, elapsed, f", last {key}" if key else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
