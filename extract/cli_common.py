"""What every ``extract`` command shares: log setup and the one way to fail with a message."""

from __future__ import annotations

import logging
import sys

import typer

FROM_YAML = "from --config"  # run options left out take the value in the run's YAML config


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` and exit with ``code`` (2: nothing was done)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
