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

    def videos(self, total: int, *, every: int | None = None) -> VideoCounter:
        """A counter of the ``total`` videos of a run; log mode writes a line every ``every`` videos
        (default: a tenth of the run, at least 1 and at most 10) and one per shard committed."""
        return VideoCounter(self, total, every or max(1, min(10, total // 10)))


class VideoCounter:
    """Counts a run's videos in three steps: ``decoded`` (optional: frames ready for the models),
    ``extracted`` (features computed or the video failed; its shard is still to be committed) and
    ``advance`` (committed to OUT: done or failed). The local executor batches a shard's videos
    through the models together, so decoding is what moves per video between commits; the ETA
    follows extraction, and is unknown until a video is extracted (decoding is a few percent of
    the work and runs ahead: its rate promised seconds for minutes of work). An executor that reports
    commits only (Ray) counts each video extracted when it commits. ``close`` it at the end.
    """

    def __init__(self, reporter: Reporter, total: int, every: int) -> None:
        self.reporter, self.total, self.every = reporter, total, every
        self.decoded_count = self.extracted_count = self.done = self.failed = 0
        self._committing: set[str] = set()  # keys extracted, their shard not committed yet
        self.start = time.monotonic()
        self._bar = None
        if reporter.mode == "bar":
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(
                TextColumn("[bold]extract"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=reporter.console,
                transient=False,
            )
            self._task = self._bar.add_task("videos", total=total, status="")
            self._bar.start()

    def decoded(self, key: str) -> None:
        """``key`` is decoded (or failed to decode) and goes to the models."""
        self.decoded_count += 1
        self._show(key, force=self.decoded_count % self.every == 0 and self.decoded_count < self.total)

    def extracted(self, key: str) -> None:
        """``key`` is extracted (or failed) and waits for its shard's commit."""
        self._committing.add(key)
        self.extracted_count += 1
        self._show(key, force=False)  # a shard's videos leave the models together: its commit logs them

    def advance(self, ok: bool, key: str = "") -> None:
        """``key`` is committed: done (``ok``) or failed."""
        self.done += ok
        self.failed += not ok
        if key in self._committing:
            self._committing.discard(key)
            self._show(key, force=not self._committing)  # a line per shard committed
        else:
            self._count_extracted(key)

    def _count_extracted(self, key: str) -> None:
        self.extracted_count += 1
        n = self.extracted_count
        self._show(key, force=n % self.every == 0 or n == self.total)

    def status(self) -> str:
        """Where the videos are: extracted, of which committed (done, failed) and still committing."""
        return (f"{self.extracted_count}/{self.total} videos extracted ({self.decoded_count} decoded, "
                f"{len(self._committing)} committing; committed: done {self.done} failed {self.failed})")

    def eta_s(self) -> float | None:
        """Seconds left at the rate of extraction so far; None before the first video is extracted."""
        n = self.extracted_count
        return (self.total - n) * (time.monotonic() - self.start) / n if n else None

    def _show(self, key: str, *, force: bool) -> None:
        if self._bar is not None:
            status = (f"{self.decoded_count} decoded, {len(self._committing)} committing, "
                      f"done {self.done} failed {self.failed}")
            self._bar.update(self._task, completed=self.extracted_count, status=status)
        elif force:
            eta = self.eta_s()
            eta_text = f"{eta:.1f} s" if eta is not None else "unknown"
            last = f", last key {key}" if key else ""
            self.reporter.line(f"{self.status()}, {time.monotonic() - self.start:.1f} s elapsed, ETA {eta_text}{last}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
