"""Pretrained weights as data: where each file comes from, and how a run finds it offline.

Weights load through torch.hub's cache (the mechanism torchvision and pytorchvideo use
themselves) or from a local directory. A run checks every file it needs before any work:
all missing files are named in one message with the ways to provide them, and a file whose
sha256 does not start with the hash in its torchvision name (``resnet152-f82ba261.pth``) is
refused, as is an empty one.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RANDOM = "random"
PRETRAINED = "pretrained"
MODES = (PRETRAINED, RANDOM)
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torch.hub's convention for file names


class WeightsUnavailable(RuntimeError):
    """A pretrained weights file is missing (not cached, not in --weights DIR, not downloadable)
    or is not the expected file (empty, wrong sha256), or --weights names no mode or directory."""


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained checkpoint: ``name`` is recorded in run.json and the shards."""

    name: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str | None:
        """The start of the file's sha256 that its name carries, or None (pytorchvideo's names carry none)."""
        match = _HASH_IN_NAME.search(self.filename)
        return match.group(1) if match else None


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the key so a replaced file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(spec: WeightsSpec, path: Path) -> str | None:
    """Why ``path`` is not ``spec``'s checkpoint (empty, or a sha256 not matching its name), or None."""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty (0 bytes)"
    prefix = spec.hash_prefix
    if prefix is not None:
        sha = file_sha256(path)
        if not sha.startswith(prefix):
            return (f"{path} ({size} bytes) has sha256 {sha[:16]}..., expected one starting with {prefix} "
                    "(the hash in its file name): it is truncated or another file")
    return None


def check_choice(choice: str) -> None:
    """Refuse a --weights value that is neither a mode nor an existing directory (``Random``, ``pretraind``)."""
    if choice in MODES or Path(choice).is_dir():
        return
    close = difflib.get_close_matches(choice.lower(), MODES, n=1, cutoff=0.6)
    hint = f"did you mean --weights {close[0]}? " if close else ""
    raise WeightsUnavailable(
        f"--weights {choice}: not {PRETRAINED}, not {RANDOM}, and no such directory; {hint}"
        f"pass --weights {PRETRAINED} (torch hub cache), --weights {RANDOM} (smoke tests) or an existing directory"
    )


def resolve_all(specs: dict[str, WeightsSpec], choice: str) -> dict[str, Path | None]:
    """The local file of every spec (None for each with ``"random"``), checked before any work.

    Args:
        specs: the checkpoints a run needs, keyed by model role.
        choice: ``"pretrained"`` (torch.hub cache, downloading what is missing if possible),
            ``"random"`` (no files: the models initialise randomly), or a directory holding the files.
    Raises:
        WeightsUnavailable naming every missing or bad file, with what was expected and the ways
        to provide it.
    """
    check_choice(choice)
    if choice == RANDOM:
        return {role: None for role in specs}
    found: dict[str, Path | None] = {}
    missing: list[WeightsSpec] = []
    bad: list[str] = []
    download_error: str | None = None
    for role, spec in specs.items():
        path = (hub_checkpoint_dir() if choice == PRETRAINED else Path(choice)) / spec.filename
        if not path.is_file() and choice == PRETRAINED and download_error is None:
            download_error = _download(spec, path)  # after one failure the others would fail alike
        if not path.is_file():
            missing.append(spec)
            continue
        problem = check_file(spec, path)
        if problem:
            bad.append(f"  {problem}; get {spec.filename} ({spec.name}) again from {spec.url}")
        found[role] = path
    if missing or bad:
        raise WeightsUnavailable(_message(missing, bad, choice, download_error))
    return found


def _download(spec: WeightsSpec, path: Path) -> str | None:
    import torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec.url, str(path), hash_prefix=spec.hash_prefix, progress=False)
    except Exception as e:  # noqa: BLE001 - any network failure means the same thing here
        path.unlink(missing_ok=True)
        return f"downloading {spec.url} failed ({type(e).__name__}: {e})"
    return None


def _message(missing: list[WeightsSpec], bad: list[str], choice: str, download_error: str | None) -> str:
    lines = []
    if missing:
        where = f"the torch hub cache {hub_checkpoint_dir()}" if choice == PRETRAINED else f"--weights {choice}"
        lines.append(f"{len(missing)} weights file(s) missing from {where}"
                     + (f" ({download_error})" if download_error else "") + ":")
        lines += [f"  {spec.filename} ({spec.name}) from {spec.url}" for spec in missing]
        if choice == PRETRAINED:
            lines.append(f"Provide them either by (1) copying them into {hub_checkpoint_dir()} (set TORCH_HOME to "
                         "move that cache), or (2) putting them in a directory and passing --weights DIR.")
        else:
            lines.append(f"Download them into {choice}, or pass --weights {PRETRAINED} to use the torch hub cache.")
    if bad:
        lines.append(f"{len(bad)} weights file(s) are not the expected checkpoint:")
        lines += bad
    lines.append(f"For a smoke test without pretrained weights pass --weights {RANDOM}.")
    return "\n".join(lines)


def resolve_weights(spec: WeightsSpec, choice: str) -> Path | None:
    """The local file of one checkpoint (see ``resolve_all``)."""
    return resolve_all({"model": spec}, choice)["model"]


def load_state_dict(path: Path) -> dict:
    """Load a checkpoint's state dict on the CPU; pytorchvideo nests it under ``model_state``."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise WeightsUnavailable(f"weights file {path} cannot be loaded ({type(e).__name__}: {e}); "
                                 "download it again, or pass --weights random for a smoke test") from None
    if isinstance(state, dict) and "model_state" in state:
        state = state["model_state"]
    return state
