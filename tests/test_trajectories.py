"""Tests of extract.trajectories.trajectory_arrays: values, the span rule, empty and
single-frame videos, HDF5 compatibility and validation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from extract.linking import LinkConfig, Trajectory, link_detections
from extract.trajectories import trajectory_arrays

NAMES = ["person", "dog", "ball"]


def _video(num_boxes=(2, 0, 3, 1), channels=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(k, channels, generator=g) for k in num_boxes]
    xy = [torch.rand(k, 2, generator=g) * 100 for k in num_boxes]
    boxes = [torch.cat([p, p + 10 + torch.rand(len(p), 2, generator=g) * 50], 1) for p in xy]
    return feats, boxes


def test_values_and_span_rule():
    feats, boxes = _video()
    times = [0.0, 1.0, 2.0, 3.0]
    trajs = [
        Trajectory(frames=(0, 2), boxes=(1, 0), score=0.75, label=2),
        Trajectory(frames=(2, 3), boxes=(2, 0), score=0.5, label=0),
    ]
    out = trajectory_arrays(trajs, feats, boxes, times, 3.5, NAMES)

    assert out["features"].dtype == np.float32 and out["features"].shape == (2, 5)
    np.testing.assert_allclose(out["features"][0], ((feats[0][1] + feats[2][0]) / 2).numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["features"][1], ((feats[2][2] + feats[3][0]) / 2).numpy(), rtol=1e-6)
    assert out["labels"].dtype == np.int64 and out["labels"].tolist() == [2, 0]
    assert out["scores"].dtype == np.float32 and out["scores"].tolist() == [0.75, 0.5]
    # A trajectory frame stands until the next one; the last one until the end of the video.
    np.testing.assert_allclose(out["span"], [[0 / 3.5, 3 / 3.5], [2 / 3.5, 1.0]], rtol=1e-6)
    assert out["span"].dtype == np.float32

    assert out["boxes"].shape == (2, 4, 4) and out["boxes"].dtype == np.float32
    present = ~np.isnan(out["boxes"]).any(-1)
    assert present.tolist() == [[True, False, True, False], [False, False, True, True]]
    assert np.isnan(out["boxes"][~present]).all()  # absent frames are NaN in every coordinate
    np.testing.assert_array_equal(out["boxes"][0, 2], boxes[2][0].numpy())
    np.testing.assert_array_equal(out["boxes"][1, 3], boxes[3][0].numpy())
    assert out["frame_times"].dtype == np.float32 and out["frame_times"].tolist() == times
    assert out["label_names"].tolist() == [b"ball", b"person"]


def test_no_names_no_label_names():
    feats, boxes = _video()
    out = trajectory_arrays([Trajectory((0,), (0,), 0.9, 1)], feats, boxes, [0.0, 1.0, 2.0, 3.0], 4.0)
    assert "label_names" not in out
    np.testing.assert_allclose(out["span"], [[0.0, 0.25]])


def test_no_trajectories_gives_well_formed_empty_arrays():
    feats, boxes = _video(num_boxes=(0, 0, 0), channels=7)
    trajs = link_detections(boxes, [torch.zeros(0)] * 3, [torch.zeros(0, dtype=torch.int64)] * 3)
    assert trajs == []
    out = trajectory_arrays(trajs, feats, boxes, [0.0, 1.0, 2.0], 2.5, NAMES)
    shapes = {k: v.shape for k, v in out.items()}
    assert shapes == {
        "features": (0, 7),
        "labels": (0,),
        "scores": (0,),
        "span": (0, 2),
        "boxes": (0, 3, 4),
        "frame_times": (3,),
        "label_names": (0,),
    }
    assert out["features"].dtype == np.float32 and out["boxes"].dtype == np.float32
    assert out["labels"].dtype == np.int64 and out["label_names"].dtype.kind == "S"


def test_single_frame_video_end_to_end():
    boxes = [torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])]
    feats = [torch.tensor([[1.0, 2.0], [3.0, 4.0]])]
    trajs = link_detections(boxes, [torch.tensor([0.9, 0.8])], [torch.tensor([0, 1])])
    out = trajectory_arrays(trajs, feats, boxes, [0.0], 0.5, NAMES)
    assert out["features"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert out["span"].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert out["boxes"].tolist() == [[[0.0, 0, 10, 10]], [[50.0, 50, 60, 60]]]
    assert out["label_names"].tolist() == [b"person", b"dog"]


def test_linked_video_arrays_match_the_inputs():
    # One object drifting over 6 frames with a missed detection at frame 2.
    boxes = [
        torch.tensor([[f * 2.0, 0, f * 2.0 + 40, 40]]) if f != 2 else torch.zeros(0, 4) for f in range(6)
    ]
    scores = [torch.full((len(b),), 0.8) for b in boxes]
    labels = [torch.full((len(b),), 1, dtype=torch.int64) for b in boxes]
    feats = [torch.full((len(b), 3), float(f)) for f, b in enumerate(boxes)]
    trajs = link_detections(boxes, scores, labels, LinkConfig())
    assert [t.frames for t in trajs] == [(0, 1, 3, 4, 5)]
    out = trajectory_arrays(trajs, feats, boxes, [0.0, 1, 2, 3, 4, 5], 6.0)
    np.testing.assert_allclose(out["features"], [[(0 + 1 + 3 + 4 + 5) / 5] * 3])
    assert np.isnan(out["boxes"][0, 2]).all() and not np.isnan(out["boxes"][0, [0, 1, 3, 4, 5]]).any()
    np.testing.assert_allclose(out["span"], [[0.0, 1.0]])


def test_arrays_write_to_hdf5(tmp_path):
    feats, boxes = _video()
    trajs = [Trajectory((0, 2), (1, 0), 0.75, 2)]
    for name, arrays in [
        ("some", trajectory_arrays(trajs, feats, boxes, [0.0, 1, 2, 3], 4.0, NAMES)),
        ("none", trajectory_arrays([], feats, boxes, [0.0, 1, 2, 3], 4.0, NAMES)),
    ]:
        with h5py.File(tmp_path / "t.h5", "a") as h5:
            for key, value in arrays.items():
                h5.create_dataset(f"trajectories/{name}/{key}", data=value)
        with h5py.File(tmp_path / "t.h5", "r") as h5:
            for key, value in arrays.items():
                np.testing.assert_array_equal(h5[f"trajectories/{name}/{key}"][()], value)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(times=[0.0, 1.0, 2.0]), "got 4, 4 and 3"),
        (dict(times=[0.0, 2.0, 1.0, 3.0]), "strictly increasing"),
        (dict(duration=3.0), "duration: expected > the last frame time 3.0"),
        (dict(trajs=[Trajectory((1,), (0,), 0.5, 0)]), "box 0 of frame 1 does not exist"),
        (dict(trajs=[Trajectory((2, 0), (0, 0), 0.5, 0)]), "strictly increasing frames"),
        (dict(trajs=[Trajectory((0,), (0,), 0.5, 3)]), "label 3 has no name"),
        (dict(feat0=torch.zeros(2, 6)), r"roi_features\[1\]: expected shape \(K, 6\), got \(0, 5\)"),
        (
            dict(box0=torch.zeros(3, 4)),
            r"boxes\[0\]: expected shape \(2, 4\) to match roi_features\[0\], got \(3, 4\)",
        ),
    ],
)
def test_validation(change, message):
    feats, boxes = _video()
    if "feat0" in change:
        feats[0] = change["feat0"]
    if "box0" in change:
        boxes[0] = change["box0"]
    with pytest.raises(ValueError, match=message):
        trajectory_arrays(
            change.get("trajs", [Trajectory((0,), (0,), 0.5, 0)]),
            feats,
            boxes,
            change.get("times", [0.0, 1.0, 2.0, 3.0]),
            change.get("duration", 4.0),
            NAMES,
        )


def test_zero_frames_is_an_error():
    with pytest.raises(ValueError, match="at least one trajectory frame"):
        trajectory_arrays([], [], [], [], 1.0)
