"""Dataset adapters: annotation files -> one ``VideoRecord`` per feature key, plus ``Question``s.

``load_dataset(name, root)`` reads the annotations of one of ``DATASETS`` and checks them
completely (keys, paths, answer indices) before any extraction starts; a problem raises
``AnnotationError`` naming the file and the row. Videos are listed even when their file is
missing: such a video fails alone at extraction (DESIGN.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import demo, demo_mc, folder, msvd, nextqa, tgif
from extract.names import DATASETS, QUESTION_SPLITS

from .base import AnnotationError, Question, VideoRecord
from .demo import generate_demo
from .demo_mc import generate_demo_mc

__all__ = ["DATASETS", "QUESTION_SPLITS", "AnnotationError", "Dataset", "Question", "VideoRecord",
           "generate_demo", "generate_demo_mc", "load_dataset"]



@dataclass
class Dataset:
    """The videos of one dataset (one per distinct key, sorted by key) and its questions."""

    name: str
    root: Path
    videos: list[VideoRecord]
    _questions: list[Question] = field(default_factory=list, repr=False)

    def questions(self, split: str | None = None) -> list[Question]:
        """Questions of one split (``train``, ``val``, ``test``, ``total``), or all when ``None``,
        in annotation-file order."""
        if split is None:
            return list(self._questions)
        if split not in QUESTION_SPLITS:
            raise ValueError(f"split must be one of {', '.join(QUESTION_SPLITS)} or None, got {split!r}")
        return [question for question in self._questions if question.split == split]


def load_dataset(name: str, root: Path, *, videos_dir: Path | None = None) -> Dataset:
    """Load dataset ``name`` from its data ``root``.

    videos_dir: where the video files are, instead of the dataset's usual place under ``root``
        (``gifs/`` for tgif, ``videos/`` for msvd, msrvtt and nextqa); for ``folder`` the
        directory to scan (default ``root``). Not accepted for ``demo``, which generates its
        own videos into ``root`` when ``root`` is missing or empty, nor for ``demo-mc`` (likewise).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    root = Path(root).absolute()
    videos_dir = Path(videos_dir).absolute() if videos_dir is not None else None
    if name == "folder":
        return Dataset(name, root, folder.load(videos_dir or root))
    if name == "demo":
        if videos_dir is not None:
            raise ValueError(f"the demo dataset generates its videos under root/gifs; got videos_dir={videos_dir}")
        demo.ensure_demo(root)
    elif name == "demo-mc":
        if videos_dir is not None:
            raise ValueError(f"the demo-mc dataset generates its videos under root/videos; got videos_dir={videos_dir}")
        demo_mc.ensure_demo_mc(root)
    elif not root.is_dir():
        raise AnnotationError(f"{root}: the {name} data root does not exist or is not a directory")
    loader = {"tgif": tgif.load, "demo": tgif.load, "msvd": msvd.load_msvd, "msrvtt": msvd.load_msrvtt,
              "nextqa": nextqa.load, "demo-mc": nextqa.load}[name]
    videos, questions = loader(root, videos_dir=videos_dir)
    return Dataset(name, root, videos, questions)
