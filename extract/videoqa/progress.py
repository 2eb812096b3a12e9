"""Training progress: a rich bar on a terminal, ``logging`` lines otherwise, or nothing."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator

__all__ = ["Reporter"]

log = logging.getLogger("extract.videoqa.train")


class Reporter:
    """Progress as a rich bar on a terminal, ``logging`` lines otherwise (the CLI configures logging),
    or none; warnings are always shown."""

    def __init__(self, mode: str):
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
