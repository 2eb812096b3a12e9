"""Pretrained weights as data: where each file comes from, and how a run finds it offline.

Weights load through torch.hub's cache (the mechanism torchvision and pytorchvideo use
themselves) or from a local directory. A run that cannot find a file stops before any
work with a message naming the file and the two ways to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RANDOM = "random"
PRETRAINED = "pretrained"


class WeightsUnavailable(RuntimeError):
    """A pretrained weights file is neither cached, nor in --weights DIR, nor downloadable."""


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained checkpoint: ``name`` is recorded in run.json and the shards."""

    name: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(spec: WeightsSpec, choice: str) -> Path | None:
    """Find the local file for ``spec``.

    Args:
        choice: ``"pretrained"`` (torch.hub cache, downloading if possible), ``"random"``
            (no file: the caller initialises randomly), or a directory holding the file.
    Returns:
        The path of the checkpoint, or None for ``"random"``.
    Raises:
        WeightsUnavailable naming the missing file, its URL and both ways to provide it.
    """
    if choice == RANDOM:
        return None
    if choice != PRETRAINED:
        path = Path(choice) / spec.filename
        if not path.is_file():
            raise WeightsUnavailable(
                f"weights file {spec.filename} ({spec.name}) is missing from --weights {choice}; "
                f"download it from {spec.url} into that directory"
            )
        return path
    cached = hub_checkpoint_dir() / spec.filename
    if cached.is_file():
        return cached
    import torch

    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec.url, str(cached), progress=False)
    except Exception as e:  # noqa: BLE001 - any network failure means the same thing here
        cached.unlink(missing_ok=True)
        raise WeightsUnavailable(
            f"weights file {spec.filename} ({spec.name}) is not in the torch hub cache {cached.parent} "
            f"and downloading {spec.url} failed ({type(e).__name__}: {e}). Provide it either by "
            f"(1) copying {spec.filename} into {cached.parent} (set TORCH_HOME to move that cache), or "
            f"(2) putting it in a directory and passing --weights DIR. "
            f"For a smoke test without pretrained weights pass --weights random."
        ) from None
    return cached


def load_state_dict(path: Path) -> dict:
    """Load a checkpoint's state dict on the CPU; pytorchvideo nests it under ``model_state``."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model_state" in state:
        state = state["model_state"]
    return state
