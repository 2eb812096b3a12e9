"""Progress of extraction and training: a rich bar on a terminal, ``logging`` lines otherwise
(CI, files, Ray logs), or nothing; warnings are always shown.

One :class:`Reporter` per run; ``mode`` is one of ``extract.names.PROGRESS_MODES``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from extract.names import PROGRESS_MODES

log = logging.getLogger("extract")


class Reporter:
    """Reports lines, iterations (training batches) and finished videos in one ``mode``:
    ``auto`` (a bar on a terminal, log lines otherwise), ``bar``, ``log`` or ``none``."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress mode must be one of {list(PROGRESS_MODES)}, got {mode!r}")
        self.mode = ("bar" if sys.stderr.isatty() else "log") if mode == "auto" else mode
        if self.mode == "bar":
            from rich.console import Console

            self.console = Console(stderr=True)

    def line(self, text: str, *, warning: bool = False) -> None:
        if self.mode == "bar":
            self.console.print(f"warning: {text}" if warning else text, highlight=False, markup=False)
        elif warning:
            log.warning(text)
        elif self.mode == "log":
            log.info(text)

    def iterate(self, items: Iterable, total: int, description: str) -> Iterator:
        """``items`` as they come, with a transient bar or a log line every tenth of ``total``."""
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(description, total=total)
                for item in items:
                    yield item
                    bar.advance(task)
        elif self.mode == "log":
            every = max(1, total // 10)
            for i, item in enumerate(items, start=1):
                yield item
                if i % every == 0 or i == total:
                    self.line(f"{description}: batch {i}/{total}")
        else:
            yield from items

    def videos(self, total: int, *, every: int = 10) -> VideoCounter:
        """A counter of the ``total`` videos of a run; log mode writes a line every ``every`` videos."""
        return VideoCounter(self, total, every)


class VideoCounter:
    """Counts videos as they finish, done or failed; ``close`` it at the end of the run."""

    def __init__(self, reporter: Reporter, total: int, every: int) -> None:
        self.reporter, self.total, self.every = reporter, total, every
        self.done = self.failed = 0
        self.start = time.monotonic()
        self._bar = None
        if reporter.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]extract"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(), console=reporter.console, transient=False,
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
            self.reporter.line(f"{n}/{self.total} videos ({status}) {elapsed:.1f} s elapsed" + (f", last {key}" if key else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
