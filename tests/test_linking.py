"""Tests of extract.linking: seq-NMS against a brute-force reference, the improvements one by
one, recall on synthetic tracks, degenerate inputs, JSON and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from extract.detections import parse_json_detections
from extract.linking import (
    LinkConfig,
    Trajectory,
    link_detections,
    trajectories_to_json,
)

NO_CAPS = dict(min_length=1, top_n=None)


def _tensors(frames):
    """[(boxes, scores, labels) per frame] as python lists -> the three tensor lists."""
    boxes = [torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b, _, _ in frames]
    scores = [torch.tensor(s, dtype=torch.float32) for _, s, _ in frames]
    labels = [torch.tensor(c, dtype=torch.int64) for _, _, c in frames]
    return boxes, scores, labels


def _key(t: Trajectory):
    return list(zip(t.frames, t.boxes)), t.label


# ---------------------------------------------------------------- brute-force reference


def _iou_ref(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _brute_force(boxes, scores, labels, cfg: LinkConfig):
    """Seq-NMS by enumerating every path of the link graph at each step.

    Returns [(frames, boxes, rescored score, label)] in the documented order: decreasing
    path score, ties to the path whose reversed (frame, box) sequence is smallest.
    """
    num_frames = len(boxes)
    nodes = [(f, i) for f in range(num_frames) for i in range(len(boxes[f]))]
    groups = (
        [nodes]
        if cfg.class_agnostic
        else [[n for n in nodes if labels[n[0]][n[1]] == c] for c in sorted({labels[f][i] for f, i in nodes})]
    )
    selected = []
    for group in groups:
        alive = set(group)
        while alive:
            paths = []

            def extend(path):
                paths.append(path)
                f, i = path[-1]
                for g in range(f + 1, min(num_frames, f + cfg.max_gap + 2)):
                    for j in range(len(boxes[g])):
                        if (g, j) in alive and _iou_ref(boxes[f][i], boxes[g][j]) >= cfg.link_iou:
                            extend(path + [(g, j)])

            for node in sorted(alive):
                extend([node])
            totals = []
            for p in paths:
                total = 0.0
                for f, i in p:
                    total += scores[f][i]
                totals.append(total)
            top = max(totals)
            if top < cfg.min_score:
                break
            chosen = min((p for p, t in zip(paths, totals) if t == top), key=lambda p: tuple(reversed(p)))
            selected.append((top, chosen))
            for f, i in chosen:
                for j in range(len(boxes[f])):
                    if (f, j) in alive and (j == i or _iou_ref(boxes[f][i], boxes[f][j]) >= cfg.suppress_iou):
                        alive.discard((f, j))
    selected.sort(key=lambda r: (-r[0], tuple(reversed(r[1]))))
    out = []
    for _, path in selected:
        if len(path) < cfg.min_length:
            continue
        s = [scores[f][i] for f, i in path]
        weight = {}
        for f, i in path:
            weight[labels[f][i]] = weight.get(labels[f][i], 0.0) + scores[f][i]
        label = sorted(weight, key=lambda c: (-weight[c], c))[0]
        rescored = sum(s) / len(s) if cfg.rescore == "mean" else max(s)
        out.append((tuple(f for f, _ in path), tuple(i for _, i in path), rescored, label))
    return out[: cfg.top_n] if cfg.top_n is not None else out


def _random_video(rng, num_frames=None, num_anchors=3):
    """Few frames (unless given), boxes jittered on an integer grid around a few anchors (so links,
    suppressions and IoUs exactly at a threshold are common), dyadic scores (so equal path
    scores are exactly equal sums)."""
    num_frames = num_frames or int(rng.integers(1, 6))
    anchors = rng.integers(0, 10 * num_anchors, size=(num_anchors, 2))
    frames = []
    for _ in range(num_frames):
        k = int(rng.integers(0, 5 + num_anchors // 3))
        a = anchors[rng.integers(0, num_anchors, size=k)] + rng.integers(-2, 3, size=(k, 2))
        wh = rng.integers(8, 13, size=(k, 2))
        b = np.concatenate([a, a + wh], axis=1).tolist()
        s = (rng.integers(0, 5, size=k) / 4).tolist()  # 0, 0.25, ..., 1: exact ties
        c = rng.integers(0, 2, size=k).tolist()
        frames.append((b, s, c))
    return frames


@pytest.mark.parametrize("seed", range(300))
def test_matches_brute_force_no_gap_class_aware(seed):
    rng = np.random.default_rng(seed)
    frames = _random_video(rng)
    cfg = LinkConfig(
        max_gap=0,
        class_agnostic=False,
        **NO_CAPS,
        rescore=["mean", "max"][seed % 2],
        min_score=[0.0, 0.5, 1.0][seed % 3],
    )
    expected = _brute_force(*[[fr[n] for fr in frames] for n in range(3)], cfg)
    got = link_detections(*_tensors(frames), cfg)
    assert [(t.frames, t.boxes, t.label) for t in got] == [e[:2] + (e[3],) for e in expected]
    assert [t.score for t in got] == pytest.approx([e[2] for e in expected], abs=1e-12)


@pytest.mark.parametrize("seed", range(150))
def test_matches_brute_force_with_improvements(seed):
    """The same reference with gaps, class-agnostic weighted labels and caps."""
    rng = np.random.default_rng(1000 + seed)
    frames = _random_video(rng)
    cfg = LinkConfig(
        max_gap=1 + seed % 2,
        class_agnostic=bool(seed % 3),
        min_length=1 + seed % 2,
        top_n=[None, 1, 2][seed % 3],
        min_score=[0.0, 0.5][seed % 2],
    )
    expected = _brute_force(*[[fr[n] for fr in frames] for n in range(3)], cfg)
    got = link_detections(*_tensors(frames), cfg)
    assert [(t.frames, t.boxes, t.label) for t in got] == [e[:2] + (e[3],) for e in expected]
    assert [t.score for t in got] == pytest.approx([e[2] for e in expected], abs=1e-12)


def _full_recompute(boxes, scores, labels, cfg: LinkConfig):
    """Seq-NMS re-running the whole DP box by box after every selection (no incremental
    update), for inputs too large to enumerate paths."""
    num_frames = len(boxes)
    alive = {(f, i) for f in range(num_frames) for i in range(len(boxes[f]))}
    linked = {}
    for f in range(num_frames):
        for g in range(max(0, f - cfg.max_gap - 1), f):
            for i in range(len(boxes[f])):
                for j in range(len(boxes[g])):
                    same = cfg.class_agnostic or labels[f][i] == labels[g][j]
                    linked[(g, j), (f, i)] = same and _iou_ref(boxes[g][j], boxes[f][i]) >= cfg.link_iou
    out = []
    while alive:
        best, pred = {}, {}
        for f, i in sorted(alive):
            value, pred[f, i] = 0.0, None
            for g, j in sorted(n for n in alive if n[0] < f):
                if linked.get(((g, j), (f, i))) and best[g, j] > value:
                    value, pred[f, i] = best[g, j], (g, j)
            best[f, i] = scores[f][i] + value
        top = max(best.values())
        if top < cfg.min_score:
            break
        node = min(n for n in sorted(best) if best[n] == top)
        path = [node]
        while pred[path[-1]] is not None:
            path.append(pred[path[-1]])
        path.reverse()
        out.append((tuple(f for f, _ in path), tuple(i for _, i in path)))
        for f, i in path:
            for j in range(len(boxes[f])):
                same = cfg.class_agnostic or labels[f][i] == labels[f][j]
                if (f, j) in alive and (
                    j == i or (same and _iou_ref(boxes[f][i], boxes[f][j]) >= cfg.suppress_iou)
                ):
                    alive.discard((f, j))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_incremental_dp_matches_full_recompute_on_longer_videos(seed):
    rng = np.random.default_rng(50 + seed)
    if seed % 2:
        frames = _random_video(rng, num_frames=40, num_anchors=8)
    else:  # crowded moving objects: long paths, suppression across tracks
        frames = _synthetic_video(rng, num_frames=25, num_objects=3, width=480.0, height=360.0)[1]
    cfg = LinkConfig(max_gap=seed % 4, class_agnostic=bool(seed % 3), top_n=None, min_score=0.0)
    tensors = _tensors(frames)
    expected = _full_recompute(*[[t.double().tolist() for t in ts] for ts in tensors], cfg)
    got = link_detections(*tensors, cfg)
    assert [(t.frames, t.boxes) for t in got] == expected
    assert any(len(p[0]) > 2 for p in expected)


def test_exact_ties_follow_the_documented_rule():
    cfg = LinkConfig(max_gap=0, class_agnostic=False, suppress_iou=0.5, **NO_CAPS, min_score=0.0)
    # Two far-apart tracks of equal sum, on box a in frames 0-1 and box b in frames 1-2:
    # the one whose last box comes first wins.
    a, b = [100, 100, 110, 110], [0, 0, 10, 10]
    frames = [([a], [0.5], [0]), ([a, b], [0.5, 0.5], [0, 0]), ([b], [0.5], [0])]
    got = link_detections(*_tensors(frames), cfg)
    assert [_key(t)[0] for t in got] == [[(0, 0), (1, 0)], [(1, 1), (2, 0)]]
    # Same frames: the lower box index of the last box wins.
    frames = [([b, a], [0.5, 0.5], [0, 0]), ([b, a], [0.5, 0.5], [0, 0])]
    got = link_detections(*_tensors(frames), cfg)
    assert [_key(t)[0] for t in got] == [[(0, 0), (1, 0)], [(0, 1), (1, 1)]]
    # Two equal predecessors of one box (IoU 0.7 each, 0.4 with each other): lower index wins.
    frames = [([[0, 0, 10, 7], [0, 3, 10, 10]], [0.5, 0.5], [0, 0]), ([[0, 0, 10, 10]], [0.5], [0])]
    got = link_detections(*_tensors(frames), cfg)
    assert [_key(t)[0] for t in got] == [[(0, 0), (1, 0)], [(0, 1)]]


def test_iou_exactly_at_threshold_links_and_suppresses():
    # [0,0,10,10] vs [0,0,10,5]: IoU exactly 0.5 -> linked. [0,0,10,10] vs [0,0,10,3]: 0.3 -> suppressed.
    frames = [([[0, 0, 10, 10], [0, 0, 10, 3]], [1.0, 0.5], [0, 0]), ([[0, 0, 10, 5]], [1.0], [0])]
    got = link_detections(*_tensors(frames), LinkConfig(max_gap=0, **NO_CAPS))
    assert [_key(t) for t in got] == [([(0, 0), (1, 0)], 0)]


# ---------------------------------------------------------------- synthetic tracks


def _box_area(b):
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _volumetric_iou(gt: dict, pred: dict) -> float:
    """VidOR's vIoU: sum over the union of frames of per-frame intersection over the sum of
    per-frame union; a frame where only one trajectory is present adds 0 intersection."""
    inter = union = 0.0
    for f in set(gt) | set(pred):
        if f in gt and f in pred:
            a, b = gt[f], pred[f]
            i = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter += i
            union += _box_area(a) + _box_area(b) - i
        else:
            union += _box_area(gt.get(f, pred.get(f)))
    return inter / union


def _synthetic_video(rng, num_frames=45, num_objects=5, num_classes=10, width=1280.0, height=720.0):
    """Objects moving with noise, 20% of detections dropped, 10% label flips, a jittered
    duplicate of another class on some objects, and random low-score distractors."""
    gts = []
    for _ in range(num_objects):
        start = int(rng.integers(0, num_frames // 3))
        end = int(rng.integers(2 * num_frames // 3, num_frames))
        w, h = rng.uniform(60, 150, size=2)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        vx, vy = rng.uniform(-3, 3, size=2)
        track = {}
        for f in range(start, end + 1):
            x, y = x + vx + rng.normal(0, 1.5), y + vy + rng.normal(0, 1.5)
            if not 0 <= x <= width - w:  # bounce off the frame's edges
                x, vx = float(np.clip(x, 0, width - w)), -vx
            if not 0 <= y <= height - h:
                y, vy = float(np.clip(y, 0, height - h)), -vy
            track[f] = [x, y, x + w, y + h]
        gts.append((int(rng.integers(0, num_classes)), track))
    frames = []
    for f in range(num_frames):
        b, s, c = [], [], []
        for label, track in gts:
            if f not in track or rng.random() < 0.2:
                continue
            x1, y1, x2, y2 = track[f]
            size = np.array([x2 - x1, y2 - y1] * 2)  # detector jitter scales with the box
            b.append((np.array(track[f]) + rng.normal(0, 0.04, size=4) * size).tolist())
            s.append(float(rng.uniform(0.5, 1.0)))
            flip = rng.random() < 0.1
            c.append(int((label + rng.integers(1, num_classes)) % num_classes) if flip else label)
            if rng.random() < 0.3:
                b.append((np.array(track[f]) + rng.normal(0, 0.08, size=4) * size).tolist())
                s.append(float(rng.uniform(0.1, 0.5)))
                c.append(int((label + 1) % num_classes))
        for _ in range(int(rng.poisson(3))):
            x, y = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
            w, h = rng.uniform(30, 150, size=2)
            b.append([x, y, x + w, y + h])
            s.append(float(rng.uniform(0.05, 0.5)))
            c.append(int(rng.integers(0, num_classes)))
        for box in b:  # noise may invert a box; keep x1 <= x2, y1 <= y2
            box[0], box[2] = sorted((box[0], box[2]))
            box[1], box[3] = sorted((box[1], box[3]))
        frames.append((b, s, c))
    return gts, frames


def _recall(cfg: LinkConfig, num_videos=20):
    rng = np.random.default_rng(2024)
    found = found_with_label = total = 0
    for _ in range(num_videos):
        gts, frames = _synthetic_video(rng)
        trajs = link_detections(*_tensors(frames), cfg)
        preds = [({f: frames[f][0][i] for f, i in zip(t.frames, t.boxes)}, t.label) for t in trajs]
        for label, track in gts:
            total += 1
            matches = [p_label for p, p_label in preds if _volumetric_iou(track, p) >= 0.5]
            found += bool(matches)
            found_with_label += label in matches
    return found / total, found_with_label / total


def test_recall_on_synthetic_tracks():
    on, on_label = _recall(LinkConfig())
    off, off_label = _recall(LinkConfig(max_gap=0, class_agnostic=False, top_n=None))
    gap_only, _ = _recall(LinkConfig(class_agnostic=False, top_n=None))
    agnostic_only, _ = _recall(LinkConfig(max_gap=0, top_n=None))
    print(
        f"\ntrajectory recall at vIoU >= 0.5: improvements on {on:.3f} (label also right {on_label:.3f}), "
        f"off (max_gap=0, class-aware) {off:.3f} (label also right {off_label:.3f}); "
        f"gap tolerance alone {gap_only:.3f}, class-agnostic linking alone {agnostic_only:.3f}"
    )
    assert on >= 0.9
    assert on_label >= 0.9
    assert off <= on - 0.2


# ---------------------------------------------------------------- each improvement


def _track(frames_present, x0=0.0, labels=None, scores=None, num_frames=None):
    """One box per listed frame, drifting 1 px per frame (consecutive IoU ~0.9)."""
    num_frames = num_frames or max(frames_present) + 1
    out = []
    for f in range(num_frames):
        if f in frames_present:
            n = frames_present.index(f)
            out.append(
                (
                    [[x0 + f, 0.0, x0 + f + 20.0, 20.0]],
                    [scores[n] if scores else 0.9],
                    [labels[n] if labels else 3],
                )
            )
        else:
            out.append(([], [], []))
    return out


def _merge(*videos):
    """Frame-wise concatenation of several videos' detections."""
    return [tuple(sum((v[f][n] for v in videos), []) for n in range(3)) for f in range(len(videos[0]))]


def test_gap_tolerance_bridges_missed_detections():
    frames = _track([0, 1, 3, 4, 7, 8])  # a 1-frame miss, then a 2-frame miss
    bridged = link_detections(*_tensors(frames), LinkConfig(max_gap=2))
    assert [t.frames for t in bridged] == [(0, 1, 3, 4, 7, 8)]
    one = link_detections(*_tensors(frames), LinkConfig(max_gap=1))
    assert sorted(t.frames for t in one) == [(0, 1, 3, 4), (7, 8)]
    none = link_detections(*_tensors(frames), LinkConfig(max_gap=0))
    assert sorted(t.frames for t in none) == [(0, 1), (3, 4), (7, 8)]


def test_label_flicker_links_with_weighted_majority_label():
    # Label 7 on three low-score boxes, label 2 on two confident ones: 2 wins by weight
    # (1.8 vs 0.9) though 7 wins by count.
    frames = _track([0, 1, 2, 3, 4], labels=[7, 2, 7, 2, 7], scores=[0.3, 0.9, 0.3, 0.9, 0.3])
    got = link_detections(*_tensors(frames), LinkConfig(class_agnostic=True))
    assert len(got) == 1 and got[0].frames == (0, 1, 2, 3, 4)
    assert got[0].label == 2
    assert got[0].score == pytest.approx((0.3 * 3 + 0.9 * 2) / 5)
    # Class-aware linking splits the object by label; with max_gap=0 into singletons.
    aware = link_detections(*_tensors(frames), LinkConfig(class_agnostic=False, max_gap=0))
    assert sorted((t.frames, t.label) for t in aware) == [
        ((0,), 7),
        ((1,), 2),
        ((2,), 7),
        ((3,), 2),
        ((4,), 7),
    ]


def test_label_tie_goes_to_lower_label():
    frames = _track([0, 1], labels=[5, 4], scores=[0.5, 0.5])
    assert [t.label for t in link_detections(*_tensors(frames))] == [4]


def test_min_length_drops_short_trajectories():
    video = _merge(_track([0, 1, 2, 3, 4]), _track([1, 2], x0=300.0, num_frames=5))
    keep_all = link_detections(*_tensors(video), LinkConfig(min_length=1))
    assert sorted(len(t.frames) for t in keep_all) == [2, 5]
    long_only = link_detections(*_tensors(video), LinkConfig(min_length=3))
    assert [t.frames for t in long_only] == [(0, 1, 2, 3, 4)]


def test_min_length_dropped_path_still_suppresses():
    # A box overlapping the short path's box (IoU 0.6) is suppressed by it, not re-emitted.
    frames = [([[0, 0, 10, 10], [0, 0, 10, 6]], [0.9, 0.5], [0, 0])]
    assert link_detections(*_tensors(frames), LinkConfig(min_length=2)) == []


def test_top_n_keeps_the_best():
    video = _merge(
        _track([0, 1, 2], scores=[0.5] * 3, num_frames=4),  # path score 1.5
        _track([0, 1, 2, 3], x0=200.0, scores=[0.9] * 4),  # 3.6
        _track([1, 2], x0=400.0, scores=[0.9] * 2, num_frames=4),  # 1.8
        _track([3], x0=600.0, scores=[0.95]),  # 0.95
    )
    uncapped = link_detections(*_tensors(video), LinkConfig(top_n=None))
    assert [len(t.frames) for t in uncapped] == [4, 2, 3, 1]
    capped = link_detections(*_tensors(video), LinkConfig(top_n=2))
    assert capped == uncapped[:2]


def test_singletons_are_kept_by_default():
    video = _merge(_track([0, 1, 2]), _track([1], x0=300.0, scores=[0.8], num_frames=3))
    got = link_detections(*_tensors(video))
    singles = [(t.frames, t.boxes, t.label) for t in got if len(t.frames) == 1]
    assert singles == [((1,), (1,), 3)]


def test_rescore_max_and_min_score():
    frames = _track([0, 1, 2], scores=[0.25, 0.5, 1.0])
    assert link_detections(*_tensors(frames), LinkConfig(rescore="max"))[0].score == 1.0
    assert link_detections(*_tensors(frames), LinkConfig(rescore="mean"))[0].score == pytest.approx(1.75 / 3)
    assert link_detections(*_tensors(frames), LinkConfig(min_score=1.75)) != []
    assert link_detections(*_tensors(frames), LinkConfig(min_score=1.76)) == []


def test_defaults_turn_the_improvements_on():
    cfg = LinkConfig()
    assert cfg.max_gap >= 1 and cfg.class_agnostic and cfg.min_length == 1


# ---------------------------------------------------------------- degenerate inputs


def test_empty_frames_and_empty_videos():
    assert link_detections([], [], []) == []
    no_boxes = _tensors([([], [], [])] * 4)
    assert no_boxes[0][0].shape == (0, 4)
    assert link_detections(*no_boxes) == []
    frames = _track([0, 3], num_frames=6)  # empty frames around and between
    got = link_detections(*_tensors(frames), LinkConfig(max_gap=2))
    assert [t.frames for t in got] == [(0, 3)]


def test_single_frame_video():
    frames = [([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 9]], [0.9, 0.8, 0.7], [1, 2, 1])]
    got = link_detections(*_tensors(frames))
    # Box 2 overlaps box 0 (IoU 0.9) and is suppressed; box 1 stands alone.
    assert [(t.frames, t.boxes, t.label) for t in got] == [((0,), (0,), 1), ((0,), (1,), 2)]


def test_degenerate_boxes_do_not_loop_or_error():
    frames = [([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.9], [0, 0]), ([[5, 5, 5, 5]], [0.9], [0])]
    got = link_detections(*_tensors(frames))
    assert sorted(len(t.frames) for t in got) == [1, 1, 1]  # zero-area boxes never overlap


# ---------------------------------------------------------------- JSON and validation


def test_json_round_trip_keeps_the_files_box_order():
    # `extract link` reads the `--detections` format (extract.detections) in file order: a
    # trajectory's box indices are the file's, even where a later box scores higher.
    obj = {
        "frames": [
            {
                "time": 0.0,
                "boxes": [[1.5, 2, 30, 40], [0, 0, 10, 10]],
                "scores": [0.25, 0.875],
                "labels": [1, 3],
            },
            {"time": 1.0, "boxes": [], "scores": [], "labels": []},
            {"time": 2.0, "boxes": [[1, 0, 11, 10]], "scores": [0.75], "labels": [3]},
        ]
    }
    video = parse_json_detections(json.loads(json.dumps(obj)), source="d.json", best_first=False)
    boxes = [torch.from_numpy(f.boxes) for f in video.frames]
    scores = [torch.from_numpy(f.scores) for f in video.frames]
    labels = [torch.from_numpy(f.labels) for f in video.frames]
    assert video.times.tolist() == [0.0, 1.0, 2.0] and video.label_names == ()
    assert [b.shape for b in boxes] == [(2, 4), (0, 4), (1, 4)]
    assert boxes[0].dtype == torch.float32 and labels[0].dtype == torch.int64
    back = {
        "frames": [
            {"time": t, "boxes": b.tolist(), "scores": s.tolist(), "labels": c.tolist()}
            for t, b, s, c in zip(video.times.tolist(), boxes, scores, labels)
        ]
    }
    assert back == obj

    trajs = link_detections(boxes, scores, labels)
    assert [(t.frames, t.boxes) for t in trajs] == [((0, 2), (1, 0)), ((0,), (0,))]
    text = json.dumps(trajectories_to_json(trajs))
    loaded = json.loads(text)["trajectories"]
    assert [
        Trajectory(tuple(d["frames"]), tuple(d["boxes"]), d["score"], d["label"]) for d in loaded
    ] == trajs
    assert trajectories_to_json([]) == {"trajectories": []}


def test_tensor_validation_names_expected_and_received():
    ok_b, ok_s, ok_l = torch.zeros(2, 4), torch.ones(2), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"boxes\[0\]: expected shape \(K, 4\), got \(2, 5\)"):
        link_detections([torch.zeros(2, 5)], [ok_s], [ok_l])
    with pytest.raises(
        ValueError, match=r"scores\[0\]: expected shape \(2,\) to match boxes\[0\], got \(3,\)"
    ):
        link_detections([ok_b], [torch.ones(3)], [ok_l])
    with pytest.raises(ValueError, match=r"labels\[1\]: expected shape \(2,\)"):
        link_detections([ok_b, ok_b], [ok_s, ok_s], [ok_l, ok_l[:1]])
    with pytest.raises(ValueError, match="got 2, 1 and 1 frames"):
        link_detections([ok_b, ok_b], [ok_s], [ok_l])
    with pytest.raises(TypeError, match=r"labels\[0\]: expected an integer dtype"):
        link_detections([ok_b], [ok_s], [torch.zeros(2)])
    with pytest.raises(ValueError, match=r"scores\[0\]: expected finite scores >= 0"):
        link_detections([ok_b], [torch.tensor([0.5, float("nan")])], [ok_l])
    with pytest.raises(ValueError, match=r"boxes\[0\]: expected x1 <= x2"):
        link_detections([torch.tensor([[0.0, 0, 1, 1], [3, 0, 1, 1]])], [ok_s], [ok_l])


@pytest.mark.parametrize(
    "kwargs",
    [dict(link_iou=1.5), dict(max_gap=-1), dict(min_length=0), dict(top_n=0), dict(rescore="median")],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError, match=f"LinkConfig.{next(iter(kwargs))}"):
        LinkConfig(**kwargs)


def test_deterministic_across_calls():
    rng = np.random.default_rng(7)
    _, frames = _synthetic_video(rng)
    tensors = _tensors(frames)
    first = link_detections(*tensors, LinkConfig(top_n=None))
    assert all(link_detections(*tensors, LinkConfig(top_n=None)) == first for _ in range(3))
