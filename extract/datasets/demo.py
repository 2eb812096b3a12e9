"""The ``demo`` dataset: a deterministic synthetic TGIF-QA in miniature.

It has the four TGIF-QA tasks (Jang et al., "TGIF-QA: Toward Spatio-Temporal Reasoning in
Visual Question Answering", CVPR 2017) in the release's file format, so that the whole
pipeline and the bundled trainers run end to end without downloading anything.

Each video is one coloured shape (circle, square or triangle; red, green, blue, yellow or
purple) on a plain or lightly striped grey background, 64-160 px wide and high, 1.5-4 s
long, stored as an animated GIF with unequal frame delays (cycling 40, 70, 100 ms). The
shape performs one action (even video index) or two actions in a row (odd index), each
action taking an equal share of the video: move left / right / up / down (by 35 % of the
frame) or grow / shrink (radius x 1.6). Independently it blinks 1-5 times: the video is cut
into ``2n + 1`` equal slots, each at least 300 ms long so that a 6 fps sampling sees every
one, and the shape is hidden while a frame starts in an odd slot.

Questions (TGIF-QA wording and columns):

- count: "how many times does the <color> <shape> blink ?" -> the number of blinks;
- action (one-action videos): "what does the <color> <shape> do ?" -> 5 options from the
  six actions;
- transition (two-action videos): "what does the <color> <shape> do after <first> ?" or
  "... before <second> ?" -> 5 options (the six actions minus the one named);
- frameqa: "what color is the <shape> ?" (type 2, color) and "what shape is the <color>
  object ?" (type 0, object).

About 60 % of the videos (a seeded shuffle) are in Train_*, the rest in Test_*. A marker file
``demo.json`` records the generator version and parameters; ``ensure_demo`` generates the
dataset only where that marker is missing, and refuses a non-empty directory without it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from extract.synthetic import SHAPES, draw_shape, save_gif

from .base import AnnotationError, read_annotation_text
from .tgif import TASKS, question_file, write_tgif_questions

GENERATOR_VERSION = 1
MARKER = "demo.json"
COLORS = {  # name -> RGB; saturated, so they stand apart from the grey backgrounds
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (150, 60, 200),
}
ACTIONS = ("move left", "move right", "move up", "move down", "grow", "shrink")
DELAYS_MS = (40, 70, 100)  # GIF stores centiseconds: keep multiples of 10 ms
MIN_SLOT_MS = 300  # > 100 ms (longest delay) + 1/6 s (grid step): every blink slot is seen at 6 fps
TRAIN_FRACTION = 0.6
_MOVE = 0.35  # displacement of a move, as a fraction of the frame width / height
_GROW = 1.6  # radius factor of grow / shrink
_RADIUS = 0.12  # smallest radius, as a fraction of min(width, height)
_STEPS = {"move left": (-1, 0, 1.0), "move right": (1, 0, 1.0), "move up": (0, -1, 1.0),
          "move down": (0, 1, 1.0), "grow": (0, 0, _GROW), "shrink": (0, 0, 1 / _GROW)}


@dataclass(frozen=True)
class _Video:
    """Everything drawn into one demo GIF, and what its questions are about."""

    index: int
    split: str
    width: int
    height: int
    background: int  # grey level
    striped: bool
    color: str
    shape: str
    actions: tuple[str, ...]  # 1 or 2, performed one after the other
    blinks: int
    delays_ms: tuple[int, ...]  # one per frame
    states: tuple[tuple[float, float, float], ...]  # (cx, cy, radius) at each action boundary

    @property
    def key(self) -> str:
        return str(self.index)

    @property
    def gif_name(self) -> str:
        return f"demo_{self.index:04d}"


def ensure_demo(root: Path) -> None:
    """Generate the default demo into ``root`` unless a demo made by this generator is there."""
    params = read_marker(root)
    if params is None:
        generate_demo(root)
    elif params.get("version") != GENERATOR_VERSION:
        raise AnnotationError(f"{root / MARKER}: demo made by generator version {params.get('version')}, this "
                              f"package makes version {GENERATOR_VERSION}; delete {root} to regenerate it")


def generate_demo(root: Path, *, num_videos: int = 40, seed: int = 0) -> None:
    """Write the demo dataset (``gifs/`` and Train/Test question files for the four tasks)
    into ``root``, which must be missing or empty. Same arguments -> byte-identical files.

    A ``root`` already holding a demo with these arguments is left as it is. The files are
    written in a temporary sibling directory and moved in at the end, the marker last.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    params = {"version": GENERATOR_VERSION, "num_videos": num_videos, "seed": seed}
    write_generated(Path(root), params, lambda staging: _write_demo(staging, _plan(num_videos, seed), seed),
                    marker=MARKER, what="demo")


def write_generated(root: Path, params: dict, write, *, marker: str, what: str) -> None:
    """Generate a synthetic dataset into ``root`` (missing or empty) unless ``params`` are already there.

    ``write(staging)`` fills a temporary sibling directory; its entries are then moved into
    ``root`` and the ``marker`` file (``params`` as JSON) is written last, so a killed
    generation never looks complete.
    """
    if read_marker(root, marker, what) == params:
        return
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        detail = ", ".join(f"{k}={v}" for k, v in params.items() if k != "version")
        raise AnnotationError(f"{root}: not an empty directory; the {what} is generated only into a missing or "
                              f"empty one (found no {marker} for {detail})")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write(staging)
        (staging / marker).write_text(json.dumps(params, sort_keys=True) + "\n", encoding="utf-8")
        if root.exists():
            for entry in sorted(staging.iterdir(), key=lambda path: path.name == marker):
                os.replace(entry, root / entry.name)
        else:
            os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_marker(root: Path, marker: str = MARKER, what: str = "demo") -> dict | None:
    """The parameters recorded in ``root/<marker>``, or None when there is no marker."""
    path = root / marker
    if not path.is_file():
        return None
    try:
        params = json.loads(read_annotation_text(path))
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: unreadable {what} marker ({error}); delete {root} to regenerate it") from error
    if not isinstance(params, dict):
        raise AnnotationError(f"{path}: the {what} marker should be a JSON object; delete {root} to regenerate it")
    return params


def _plan(num_videos: int, seed: int) -> list[_Video]:
    order = list(range(num_videos))
    random.Random(f"vqa-extract-demo:{seed}:split").shuffle(order)
    train = set(order[:round(num_videos * TRAIN_FRACTION)])
    return [_plan_video(index, "train" if index in train else "test",
                        random.Random(f"vqa-extract-demo:{seed}:{index}")) for index in range(num_videos)]


def _plan_video(index: int, split: str, rng: random.Random) -> _Video:
    width, height = rng.randint(64, 160), rng.randint(64, 160)
    target_ms = rng.randrange(1500, 4001, 10)
    start = rng.randrange(len(DELAYS_MS))
    delays: list[int] = []
    while sum(delays) < target_ms:
        delays.append(DELAYS_MS[(start + len(delays)) % len(DELAYS_MS)])
    max_blinks = min(5, (sum(delays) // MIN_SLOT_MS - 1) // 2)
    first = rng.choice(ACTIONS)
    actions = (first,) if index % 2 == 0 else (first, rng.choice([a for a in ACTIONS if a != first]))
    return _Video(index=index, split=split, width=width, height=height,
                  background=rng.choice((40, 60, 170, 200, 225)), striped=rng.random() < 0.5,
                  color=rng.choice(list(COLORS)), shape=rng.choice(SHAPES), actions=actions,
                  blinks=rng.randint(1, max_blinks), delays_ms=tuple(delays),
                  states=_states(actions, width, height, rng))


def _states(actions: tuple[str, ...], width: int, height: int,
            rng: random.Random) -> tuple[tuple[float, float, float], ...]:
    """(cx, cy, radius) before the first action and after each one, kept inside the frame."""
    relative = [(0.0, 0.0, 1.0)]
    for action in actions:
        dx, dy, factor = _STEPS[action]
        x, y, scale = relative[-1]
        relative.append((x + dx * _MOVE * width, y + dy * _MOVE * height, scale * factor))
    smallest = min(scale for _, _, scale in relative)
    radius = _RADIUS * min(width, height) / smallest
    margin = radius * max(scale for _, _, scale in relative) + 2
    xs, ys = [x for x, _, _ in relative], [y for _, y, _ in relative]
    x0 = rng.uniform(margin - min(xs), width - margin - max(xs))
    y0 = rng.uniform(margin - min(ys), height - margin - max(ys))
    return tuple((x0 + x, y0 + y, radius * scale) for x, y, scale in relative)


def _frames(video: _Video) -> list:
    """The GIF frames (palette images): index 0 background grey, 1 stripe grey, 2 the shape."""
    from PIL import Image, ImageDraw

    shade = min(255, video.background + 14)
    palette = [video.background] * 3 + [shade] * 3 + list(COLORS[video.color])
    canvas = Image.new("P", (video.width, video.height), 0)
    canvas.putpalette(palette + [0] * (768 - len(palette)))
    if video.striped:
        draw = ImageDraw.Draw(canvas)
        for offset in range(-video.height, video.width, 8):
            draw.line([(offset, 0), (offset + video.height, video.height)], fill=1, width=2)
    total = sum(video.delays_ms)
    slots = 2 * video.blinks + 1
    frames, start = [], 0
    for delay in video.delays_ms:
        frame = canvas.copy()
        if (start * slots // total) % 2 == 0:  # even slot: visible
            draw_shape(ImageDraw.Draw(frame), video.shape, *_state_at(video, start / total), fill=2)
        frames.append(frame)
        start += delay
    return frames


def _state_at(video: _Video, progress: float) -> tuple[float, float, float]:
    """Linear interpolation of (cx, cy, radius); each action lasts an equal share of the video."""
    position = progress * len(video.actions)
    step = min(int(position), len(video.actions) - 1)
    fraction = position - step
    begin, end = video.states[step], video.states[step + 1]
    return tuple(a + (b - a) * fraction for a, b in zip(begin, end))


def _write_demo(root: Path, videos: list[_Video], seed: int) -> None:
    (root / "gifs").mkdir()
    for video in videos:
        frames = _frames(video)
        save_gif(root / "gifs" / f"{video.gif_name}.gif", frames, video.delays_ms)
    for split, prefix in (("train", "Train"), ("test", "Test")):
        rows: dict[str, list[dict]] = {task: [] for task in TASKS}
        for video in videos:
            if video.split == split:
                _add_questions(rows, video, random.Random(f"vqa-extract-demo:{seed}:{video.index}:questions"))
        for task in TASKS:
            write_tgif_questions(question_file(root, prefix, task), task, rows[task])


def _add_questions(rows: dict[str, list[dict]], video: _Video, rng: random.Random) -> None:
    subject = f"{video.color} {video.shape}"
    common = {"gif_name": video.gif_name, "key": video.key}
    rows["count"].append({**common, "question": f"how many times does the {subject} blink ?",
                          "answer": video.blinks, "vid_id": f"COUNT{video.index}"})
    verbs = [f"{action.split()[0]}s{action[len(action.split()[0]):]}" for action in video.actions]  # grow -> grows
    description = f"a {subject} {' then '.join(verbs)} ."
    rows["frameqa"].append({**common, "question": f"what color is the {video.shape} ?", "answer": video.color,
                            "type": 2, "vid_id": f"FRAMEQA{2 * video.index}", "description": description})
    rows["frameqa"].append({**common, "question": f"what shape is the {video.color} object ?",
                            "answer": video.shape, "type": 0, "vid_id": f"FRAMEQA{2 * video.index + 1}",
                            "description": description})
    if len(video.actions) == 1:
        right = video.actions[0]
        options = [right, *rng.sample([a for a in ACTIONS if a != right], 4)]
        question, task, vid_id = f"what does the {subject} do ?", "action", f"ACTION{video.index}"
    else:
        first, second = video.actions
        named, right, word = (first, second, "after") if rng.random() < 0.5 else (second, first, "before")
        options = [a for a in ACTIONS if a != named]
        question, task, vid_id = f"what does the {subject} do {word} {named} ?", "transition", f"TRANS{video.index}"
    rng.shuffle(options)
    rows[task].append({**common, "question": question, **{f"a{i + 1}": o for i, o in enumerate(options)},
                       "answer": options.index(right), "vid_id": vid_id})
