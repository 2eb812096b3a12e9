"""The ``demo-mc`` dataset: a deterministic synthetic NExT-QA whose answers live in object tracks.

Multiple choice in NExT-QA's release format (Xiao et al., CVPR 2021): ``{train,val,test}.csv``
with ``video, frame_count, width, height, question, answer, qid, type, a0..a4`` and the videos
as ``videos/<video>.mp4`` (lossless H.264, 12 fps, 4-6 s). Each video shows 2-4 shapes
(circle, square, triangle) of distinct colours on a grey background, named "<colour> <shape>":

- the *subject* is in view throughout; it performs one action until time tau and another
  after it (move left / right / up / down, stay still);
- the *newcomer* appears at tau (a half second at 35-55 % of the video), clear of the others, and then drifts;
- exactly one shape other than the subject (the *leaver*) moves out of the frame and is gone
  at least 0.6 s before the end; the others stay in view.

Seven questions per video (qid 0-6), five candidates each, answer = index of the right one:

- TN "what does the <subject> do after the <newcomer> appears ?" -> its action after tau;
- TC "what is the <subject> doing when the <newcomer> appears ?" -> the action under way
  until that moment (before tau);
- CW "which shape moves fastest ?" -> the highest path length per second in view (at least
  1.3 times the runner-up's);
- CH "which shape leaves the frame first ?" -> the leaver;
- DC "how many shapes are there ?" -> the number of shapes (as a word);
- DL "where is the <shape> at the end ?" -> the region of its centre in the last frame
  (middle = the central third both ways, else the quadrant; at least 5 % of the frame from
  any region border, clear of the other shapes);
- DO "which shape appears partway through the video ?" -> the newcomer.

``detections/<video>.json`` holds the ground-truth boxes of every frame in the ``--detections``
format (labels are names such as "red circle"), with seeded noise: missed boxes, coordinate
jitter and label flips. About 60 / 20 / 20 % of the videos are in train / val / test. A marker
``demo_mc.json`` records the generator version and parameters, as for the TGIF ``demo``.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .base import AnnotationError
from extract.synthetic import draw_shape, shape_box

from .demo import COLORS, SHAPES, read_marker, write_generated
from .nextqa import COLUMNS

GENERATOR_VERSION = 1
MARKER = "demo_mc.json"
FPS = 12  # video frame rate; a multiple of the 6 fps grid, so every grid time is a frame time
SIZES = ((160, 120), (192, 144))  # (width, height) of the videos
DURATIONS_S = (4, 5, 6)
ACTIONS = {"move left": (-1, 0), "move right": (1, 0), "move up": (0, -1), "move down": (0, 1), "stay still": (0, 0)}
REGIONS = ("in the middle", "at the top left", "at the top right", "at the bottom left", "at the bottom right")
COUNTS = ("one", "two", "three", "four", "five")
SPLIT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))
_BACKGROUNDS = (60, 110, 200)  # grey levels, away from the saturated shape colours
_REGION_MARGIN = 0.05  # fraction of the frame a DL answer keeps from any region border
_FASTEST_RATIO = 1.3  # the fastest shape is at least this much faster than the next


@dataclass(frozen=True)
class Track:
    """One shape: present from ``appear`` on, centre moving linearly between ``keys`` ``(t, x, y)``."""

    color: str
    shape: str
    radius: float
    keys: tuple[tuple[float, float, float], ...]

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def appear(self) -> float:
        return self.keys[0][0]

    def centre(self, t: float) -> tuple[float, float] | None:
        """Centre at time ``t``, or None before the shape appears."""
        if t < self.appear:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(self.keys, self.keys[1:]):
            if t <= t1:
                a = (t - t0) / (t1 - t0)
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return self.keys[-1][1:]

    def box(self, t: float, width: int, height: int) -> tuple[float, float, float, float] | None:
        """The drawn extent at ``t`` clipped to the frame, or None when nothing of it is in view."""
        c = self.centre(t)
        if c is None:
            return None
        x1, y1, x2, y2 = shape_box(self.shape, *c, self.radius)
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
        return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


@dataclass(frozen=True)
class Scene:
    """Everything drawn into one video and what its questions are about."""

    index: int
    split: str
    width: int
    height: int
    num_frames: int
    background: int
    tracks: tuple[Track, ...]  # drawing order; 0 subject, 1 newcomer
    tau: float  # when the newcomer appears and the subject changes action
    actions: tuple[str, str]  # the subject's, before and after tau
    leaver: int  # index of the shape that leaves the frame

    @property
    def key(self) -> str:
        return f"mc{self.index:04d}"

    @property
    def duration(self) -> float:
        return self.num_frames / FPS

    def times(self) -> list[float]:
        return [i / FPS for i in range(self.num_frames)]


def ensure_demo_mc(root: Path) -> None:
    """Generate the default demo-mc into ``root`` unless one made by this generator is there."""
    params = read_marker(root, MARKER, "demo-mc")
    if params is None:
        generate_demo_mc(root)
    elif params.get("version") != GENERATOR_VERSION:
        raise AnnotationError(f"{root / MARKER}: demo-mc made by generator version {params.get('version')}, this "
                              f"package makes version {GENERATOR_VERSION}; delete {root} to regenerate it")


def generate_demo_mc(root: Path, *, num_videos: int = 30, seed: int = 0, miss_rate: float = 0.1,
                     jitter_px: float = 1.0, flip_rate: float = 0.05) -> None:
    """Write demo-mc (``videos/``, ``{train,val,test}.csv``, ``detections/``) into ``root``.

    miss_rate: probability that a ground-truth box is left out of the detections;
    jitter_px: each box coordinate moves by up to this many pixels (then clipped to the frame);
    flip_rate: probability that a box's label is replaced by another shape name.
    Same arguments -> byte-identical files; ``root`` must be missing or empty.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    if not (0 <= miss_rate <= 1 and 0 <= flip_rate <= 1 and jitter_px >= 0):
        raise ValueError(f"expected 0 <= miss_rate, flip_rate <= 1 and jitter_px >= 0, got {miss_rate}, "
                         f"{flip_rate}, {jitter_px}")
    params = {"version": GENERATOR_VERSION, "num_videos": num_videos, "seed": seed, "miss_rate": miss_rate,
              "jitter_px": jitter_px, "flip_rate": flip_rate}
    noise = (miss_rate, jitter_px, flip_rate)
    write_generated(Path(root), params, lambda staging: _write(staging, plan(num_videos, seed), seed, noise),
                    marker=MARKER, what="demo-mc")


def plan(num_videos: int, seed: int) -> list[Scene]:
    """The scenes of a demo-mc (what :func:`generate_demo_mc` draws), for tests to check against."""
    order = list(range(num_videos))
    random.Random(f"vqa-extract-demo-mc:{seed}:split").shuffle(order)
    split_of, start = {}, 0
    for i, (split, fraction) in enumerate(SPLIT_FRACTIONS):
        count = len(order) - start if i == len(SPLIT_FRACTIONS) - 1 else round(num_videos * fraction)
        split_of.update({index: split for index in order[start : start + count]})
        start += count
    return [_plan_scene(index, split_of[index], random.Random(f"vqa-extract-demo-mc:{seed}:{index}"))
            for index in range(num_videos)]


def _plan_scene(index: int, split: str, rng: random.Random) -> Scene:
    width, height = rng.choice(SIZES)
    num_frames = FPS * rng.choice(DURATIONS_S)
    background = rng.choice(_BACKGROUNDS)
    n = rng.randint(2, 4)
    leaver_fastest = rng.random() < 0.4  # else the leaver, which must hurry out, would nearly always be fastest
    for _ in range(100_000):  # redraw until every answer is unambiguous; deterministic given rng
        scene = _try_scene(index, split, width, height, num_frames, background, n, rng)
        if scene is not None and (_fastest(scene) == scene.leaver) == leaver_fastest:
            return scene
    raise RuntimeError(f"demo-mc: no unambiguous scene found for video {index}")


def _try_scene(index: int, split: str, width: int, height: int, num_frames: int, background: int, n: int,
               rng: random.Random) -> Scene | None:
    """One random draw of a scene with ``n`` shapes; None when an answer would be ambiguous."""
    duration = num_frames / FPS
    colors = rng.sample(sorted(COLORS), n)
    radii = [rng.uniform(0.08, 0.11) * min(width, height) for _ in range(n)]
    tau = rng.choice([t / 2 for t in range(math.ceil(0.7 * duration), int(1.1 * duration) + 1)])
    before, after = rng.sample(sorted(ACTIONS), 2)
    speed = rng.uniform(10, 35)
    p0 = (rng.uniform(0, width), rng.uniform(0, height))
    p1 = _step(p0, before, speed * tau)
    p2 = _step(p1, after, speed * (duration - tau))
    tracks = [Track(colors[0], rng.choice(SHAPES), radii[0], ((0.0, *p0), (tau, *p1), (duration, *p2)))]
    leaver = rng.randint(1, n - 1)
    for k in range(1, n):
        start = tau if k == 1 else 0.0
        position = (rng.uniform(0, width), rng.uniform(0, height))
        if k == leaver:  # straight out through one edge, at a steady pace
            dx, dy = ACTIONS[rng.choice(["move left", "move right", "move up", "move down"])]
            pace = rng.uniform(8, 40)
            velocity = (dx * pace, dy * pace)
        else:
            angle, pace = rng.uniform(0, 2 * math.pi), rng.uniform(4, 35)
            velocity = (pace * math.cos(angle), pace * math.sin(angle))
        end = (position[0] + velocity[0] * (duration - start), position[1] + velocity[1] * (duration - start))
        tracks.append(Track(colors[k], rng.choice(SHAPES), radii[k], ((start, *position), (duration, *end))))
    scene = Scene(index, split, width, height, num_frames, background, tuple(tracks), tau, (before, after), leaver)
    return scene if _unambiguous(scene) else None


def _step(p: tuple[float, float], action: str, distance: float) -> tuple[float, float]:
    dx, dy = ACTIONS[action]
    return p[0] + dx * distance, p[1] + dy * distance


def _inside(scene: Scene, track: Track, t: float) -> bool:
    x1, y1, x2, y2 = shape_box(track.shape, *track.centre(t), track.radius)
    return x1 >= 2 and y1 >= 2 and x2 <= scene.width - 2 and y2 <= scene.height - 2


def _unambiguous(scene: Scene) -> bool:
    """Every shape but the leaver fully in view while present, the leaver gone well before the
    end, the newcomer clear of the others as it appears, one clear fastest shape, and a DL
    target clear of the others and of its region's borders."""
    for k, track in enumerate(scene.tracks):
        if k == scene.leaver:
            if not _inside(scene, track, track.appear) or track.box(scene.duration - 0.6, scene.width, scene.height):
                return False
        elif not all(_inside(scene, track, t) for t, _, _ in track.keys):  # linear pieces: the key points suffice
            return False
    if _overlaps(scene, 1, scene.tau):  # the newcomer appears in the clear
        return False
    speeds = sorted(mean_speeds(scene), reverse=True)
    if speeds[0] < _FASTEST_RATIO * speeds[1]:
        return False
    return bool(_dl_targets(scene))


def _overlaps(scene: Scene, k: int, t: float) -> bool:
    """Whether shape ``k`` at ``t`` comes within 2 px of another shape in view."""
    a = scene.tracks[k].box(t, scene.width, scene.height)
    for j, track in enumerate(scene.tracks):
        b = track.box(t, scene.width, scene.height) if j != k else None
        if a is not None and b is not None and a[0] < b[2] + 2 and b[0] < a[2] + 2 and a[1] < b[3] + 2 and b[1] < a[3] + 2:
            return True
    return False


def _dl_targets(scene: Scene) -> list[tuple[int, str]]:
    """Shapes in view at the end, in the clear and clearly inside a region, with that region."""
    last = scene.times()[-1]
    placed = [(k, region(scene, t.centre(last))) for k, t in enumerate(scene.tracks) if k != scene.leaver]
    return [(k, r) for k, r in placed if r is not None and not _overlaps(scene, k, last)]


def mean_speeds(scene: Scene) -> list[float]:
    """Per shape: path length of its centre while in view, per second in view (frame by frame)."""
    speeds = []
    for track in scene.tracks:
        seen = [t for t in scene.times() if track.box(t, scene.width, scene.height) is not None]
        path = sum(math.dist(track.centre(a), track.centre(b)) for a, b in zip(seen, seen[1:]))
        speeds.append(path / (seen[-1] - seen[0]) if len(seen) > 1 else 0.0)
    return speeds


def _fastest(scene: Scene) -> int:
    speeds = mean_speeds(scene)
    return speeds.index(max(speeds))


def region(scene: Scene, centre: tuple[float, float]) -> str | None:
    """The region of ``centre`` (see ``REGIONS``), or None when it is near a region border."""
    dx, dy = abs(centre[0] - scene.width / 2), abs(centre[1] - scene.height / 2)
    mx, my = _REGION_MARGIN * scene.width, _REGION_MARGIN * scene.height
    if abs(dx - scene.width / 6) < mx or abs(dy - scene.height / 6) < my:
        return None
    if dx < scene.width / 6 and dy < scene.height / 6:
        return REGIONS[0]
    if dx < mx or dy < my:
        return None
    vertical = "top" if centre[1] < scene.height / 2 else "bottom"
    return f"at the {vertical} {'left' if centre[0] < scene.width / 2 else 'right'}"


def questions(scene: Scene, rng: random.Random) -> list[dict]:
    """The seven NExT-QA rows of a scene (see the module docstring), candidates shuffled by ``rng``."""
    names = [t.name for t in scene.tracks]
    subject, newcomer = names[0], names[1]
    target, where = rng.choice(_dl_targets(scene))
    others = [f"{c} {s}" for c in sorted(COLORS) for s in SHAPES if f"{c} {s}" not in names]

    def shapes(right: str) -> list[str]:
        wrong = [n for n in names if n != right]
        return [right, *rng.sample(wrong + rng.sample(others, 4), 4)]

    asked = [
        ("TN", f"what does the {subject} do after the {newcomer} appears ?", scene.actions[1], list(ACTIONS)),
        ("TC", f"what is the {subject} doing when the {newcomer} appears ?", scene.actions[0], list(ACTIONS)),
        ("CW", "which shape moves fastest ?", names[_fastest(scene)], None),
        ("CH", "which shape leaves the frame first ?", names[scene.leaver], None),
        ("DC", "how many shapes are there ?", COUNTS[len(names) - 1], list(COUNTS)),
        ("DL", f"where is the {names[target]} at the end ?", where, list(REGIONS)),
        ("DO", "which shape appears partway through the video ?", newcomer, None),
    ]
    rows = []
    for qid, (kind, question, right, options) in enumerate(asked):
        options = options if options is not None else shapes(right)
        rng.shuffle(options)
        rows.append({"video": scene.key, "frame_count": scene.num_frames, "width": scene.width,
                     "height": scene.height, "question": question, "answer": options.index(right), "qid": qid,
                     "type": kind, **{f"a{i}": option for i, option in enumerate(options)}})
    return rows


def drawn_box(scene: Scene, track: Track, t: float) -> tuple[int, int, int, int] | None:
    """The tight box ``(x1, y1, x2, y2)`` of the pixels :func:`render` paints for ``track`` at ``t``
    (pixel edges: ``x2`` is the last column + 1), occluded ones included; None when it paints none."""
    from PIL import Image, ImageDraw

    if track.box(t, scene.width, scene.height) is None:
        return None
    mask = Image.new("L", (scene.width, scene.height), 0)
    draw_shape(ImageDraw.Draw(mask), track.shape, *track.centre(t), track.radius, fill=255)
    return mask.getbbox()


def render(scene: Scene) -> list:
    """The video frames as RGB Pillow images, shapes drawn in track order."""
    from PIL import Image, ImageDraw

    frames = []
    for t in scene.times():
        image = Image.new("RGB", (scene.width, scene.height), (scene.background,) * 3)
        draw = ImageDraw.Draw(image)
        for track in scene.tracks:
            if track.box(t, scene.width, scene.height) is not None:
                draw_shape(draw, track.shape, *track.centre(t), track.radius, fill=COLORS[track.color])
        frames.append(image)
    return frames


def detections(scene: Scene, rng: random.Random, miss_rate: float, jitter_px: float, flip_rate: float) -> dict:
    """The ground-truth boxes (:func:`drawn_box`) of every frame in the ``--detections`` JSON format, with seeded noise."""
    labels = [f"{c} {s}" for c in sorted(COLORS) for s in SHAPES]
    frames = []
    for t in scene.times():
        boxes, scores, names = [], [], []
        for track in scene.tracks:
            box = drawn_box(scene, track, t)
            if box is None or rng.random() < miss_rate:
                continue
            x1, y1, x2, y2 = (v + rng.uniform(-jitter_px, jitter_px) for v in box)
            x1, x2 = sorted((min(max(x1, 0.0), scene.width), min(max(x2, 0.0), scene.width)))
            y1, y2 = sorted((min(max(y1, 0.0), scene.height), min(max(y2, 0.0), scene.height)))
            boxes.append([round(v, 3) for v in (x1, y1, x2, y2)])
            scores.append(round(rng.uniform(0.6, 1.0), 4))
            flip = rng.random() < flip_rate
            names.append(rng.choice([n for n in labels if n != track.name]) if flip else track.name)
        frames.append({"time": t, "boxes": boxes, "scores": scores, "labels": names})
    return {"frames": frames}


def write_mp4(path: Path, frames: list, fps: int) -> None:
    """Lossless H.264 (yuv444p, crf 0), one encoder thread so that the bytes are reproducible."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast", "threads": "1"}
        stream.codec_context.thread_count = 1
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write(root: Path, scenes: list[Scene], seed: int, noise: tuple[float, float, float]) -> None:
    (root / "videos").mkdir()
    (root / "detections").mkdir()
    rows: dict[str, list[dict]] = {split: [] for split, _ in SPLIT_FRACTIONS}
    for scene in scenes:
        write_mp4(root / "videos" / f"{scene.key}.mp4", render(scene), FPS)
        dets = detections(scene, random.Random(f"vqa-extract-demo-mc:{seed}:{scene.index}:detections"), *noise)
        (root / "detections" / f"{scene.key}.json").write_text(json.dumps(dets) + "\n", encoding="utf-8")
        rows[scene.split] += questions(scene, random.Random(f"vqa-extract-demo-mc:{seed}:{scene.index}:questions"))
    for split, split_rows in rows.items():
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(split_rows)
