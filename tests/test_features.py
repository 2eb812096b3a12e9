"""MASN feature stages against independent oracles: torchvision.ops.roi_align on plain forward
passes, one-video-at-a-time runs, and the spatial formula written out."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from conftest import tiny_config, tiny_models
from extract.features import build_extractor
from extract.geometry import spatial_features
from extract.masn_index import index_paths
from extract.pipeline import run_pipeline
from extract.sampling import step_batches
from extract.video import DecodeConfig, decode
from media import write_gif, write_mp4

CONFIG = tiny_models(runtime={"batch_size": 4})


@pytest.fixture(scope="module")
def extractor():
    return build_extractor(CONFIG, ["appearance", "objects", "motion"])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("feat")
    return [
        decode(write_gif(d / "a.gif", [40, 70, 100] * 6, size=(72, 96))),
        decode(write_mp4(d / "b.mp4", 30, num_frames=50, size=(80, 64))),
        decode(write_gif(d / "one.gif", [100], size=(64, 64))),
        decode(write_gif(d / "short.gif", [100, 150, 200], size=(90, 70))),  # 3 grid frames < window
    ]


@pytest.fixture(scope="module")
def outputs(extractor, videos):
    return [features.arrays() for features in extractor(videos)]


def _frames01(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def _by_rule(model, inputs: torch.Tensor, ids: np.ndarray) -> list:
    """Plain forward passes of one video's per-step ``inputs`` [T, ...] batched as the pipeline's
    rule says (full batches of the configured size, then powers of two; each distinct frame
    ``ids`` once per batch): per step, its outputs (a tuple of [1, ...] tensors)."""
    out: list = [None] * len(inputs)
    with torch.inference_mode():
        for w in step_batches(len(inputs), CONFIG.runtime.batch_size):
            unique, first, inverse = np.unique(ids[w.start : w.stop], return_index=True, return_inverse=True)
            result = model(inputs[w.start + first].contiguous())  # NCHW, as the pipeline feeds ResNet
            result = result if isinstance(result, tuple) else (result,)
            for j, row in zip(w, inverse):
                out[j] = tuple(r[row : row + 1] for r in result)
    return out


def test_object_features_equal_roi_align_on_the_backbone_map(extractor, videos, outputs):
    size = CONFIG.appearance.size
    for video, out in zip(videos, outputs):
        frames = _frames01(video.grid_frames(video.steps))
        images = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        passes = _by_rule(extractor.appearance, images, video.grid[video.steps])
        for t in range(len(video.steps)):
            pooled, c5 = passes[t]
            np.testing.assert_allclose(out["appearance"][t], pooled[0].numpy(), atol=1e-5)
            scale = torch.tensor([c5.shape[-1] / video.width, c5.shape[-2] / video.height] * 2)
            k = out["detections/num_boxes"][t]
            boxes = torch.from_numpy(out["detections/boxes"][t, :k]) * scale
            expected = roi_align(c5[:1], [boxes], output_size=7, sampling_ratio=2, aligned=True).mean(dim=(2, 3))
            np.testing.assert_allclose(out["image_features"][t, :k], expected.numpy(), atol=1e-5)
            assert not out["image_features"][t, k:].any()


def test_motion_objects_use_exactly_the_detection_boxes(extractor, videos, outputs):
    size = CONFIG.motion.size
    for video, out in zip(videos, outputs):
        clips = torch.stack([
            F.interpolate(_frames01(video.grid_frames(window)), size=(size, size), mode="bilinear", antialias=True).permute(1, 0, 2, 3)
            for window in video.windows
        ])  # [T, 3, L, S, S]
        passes = _by_rule(extractor.motion, clips, np.arange(len(clips)))
        for t in range(len(video.steps)):
            fmap = passes[t][0].mean(dim=2)  # [1, 2048, h, w]
            np.testing.assert_allclose(out["motion"][t], fmap.mean(dim=(2, 3))[0].numpy(), atol=1e-5)
            k = out["detections/num_boxes"][t]
            scale = torch.tensor([fmap.shape[-1] / video.width, fmap.shape[-2] / video.height] * 2)
            boxes = torch.from_numpy(out["detections/boxes"][t, :k]) * scale
            expected = roi_align(fmap, [boxes], output_size=7, sampling_ratio=2, aligned=True).mean(dim=(2, 3))
            np.testing.assert_allclose(out["motion_objects"][t, :k], expected.numpy(), atol=1e-5)


def test_batched_features_equal_one_video_at_a_time(extractor, videos, outputs):
    for video, batched in zip(videos, outputs):
        alone = extractor([video])[0].arrays()
        assert alone.keys() == batched.keys()
        for name in alone:
            np.testing.assert_allclose(batched[name], alone[name], atol=1e-5, err_msg=name)


def test_spatial_features_match_the_formula_for_random_boxes():
    g = torch.Generator().manual_seed(0)
    w, h = 353, 211
    xy = torch.rand(50, 2, generator=g) * torch.tensor([w, h])
    wh = torch.rand(50, 2, generator=g) * 80
    boxes = torch.cat([xy, xy + wh], dim=1)
    got = spatial_features(boxes, w, h)
    x1, y1, x2, y2 = boxes.unbind(1)
    expected = torch.stack([x1 / w, y1 / h, x2 / w, y2 / h, (x2 - x1) / w, (y2 - y1) / h], dim=1)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match=r"Tensor\[K, 4\]"):
        spatial_features(torch.zeros(3, 5), w, h)


def test_short_and_one_frame_videos_produce_features(videos, outputs):
    one, short = outputs[2], outputs[3]
    assert one["appearance"].shape == (1, 2048) and one["motion_objects"].shape == (1, 10, 2048)
    assert videos[3].num_grid < 8 and short["motion"].shape == (1, 2048)
    assert (videos[3].windows == np.clip(np.arange(8) - 4, 0, videos[3].num_grid - 1)).all()


def test_stored_spatial_features_and_zero_rows_agree(videos, outputs):
    for video, out in zip(videos, outputs):
        n = out["detections/num_boxes"]
        assert (n <= 10).all()
        for t, k in enumerate(n):
            expected = spatial_features(torch.from_numpy(out["detections/boxes"][t, :k]), video.width, video.height)
            np.testing.assert_allclose(out["spatial_features"][t, :k], expected.numpy(), atol=1e-6)
            assert not out["spatial_features"][t, k:].any() and not out["detections/boxes"][t, k:].any()
        boxes = out["detections/boxes"]
        assert (boxes[..., 0] <= boxes[..., 2]).all() and (boxes[..., 2] <= video.width).all()
        assert (boxes[..., 3] <= video.height).all()


def test_masn_loader_reads_and_pads_the_four_files(tmp_path, folder_videos):
    out = tmp_path / "out"
    run_pipeline(tiny_config("folder", out, videos=folder_videos))
    files = index_paths(out / "masn", "folder")
    # The original MASN dataset code: one h5py handle per file, f[K] and f['image_features'][K].
    app, mot = h5py.File(files.appearance_global, "r"), h5py.File(files.motion_global, "r")
    obj, mobj = h5py.File(files.appearance_objects, "r"), h5py.File(files.motion_objects, "r")
    keys = sorted(app)
    assert keys == sorted(mot) == sorted(obj["image_features"]) == sorted(obj["spatial_features"]) == sorted(mobj)
    items = []
    for key in keys:
        a, m = app[key][:], mot[key][:]
        o, s, mo = obj["image_features"][key][:], obj["spatial_features"][key][:], mobj[key][:]
        t = a.shape[0]
        assert m.shape == (t, 2048) and o.shape == (t, 10, 2048) and s.shape == (t, 10, 6) and mo.shape == (t, 10, 2048)
        for array in (a, m, o, s, mo):
            assert np.isfinite(array).all()
        np.testing.assert_array_equal(o.any(axis=2), mo.any(axis=2))
        items.append((a, m, o, s, mo))
    t_max = max(item[0].shape[0] for item in items)
    padded = [np.stack([np.pad(item[i], [(0, t_max - item[i].shape[0])] + [(0, 0)] * (item[i].ndim - 1)) for item in items])
              for i in range(5)]
    assert padded[0].shape == (len(keys), t_max, 2048) and padded[2].shape == (len(keys), t_max, 10, 2048)
    assert padded[3].shape == (len(keys), t_max, 10, 6)


class _FixedDetections:
    """A ``DetectionSource`` that reads no pixels: one box per frame, its x1 the frame's time
    in tenths of a second, as external detections keyed by (video, time) would be."""

    class_names = ["__background__", "thing"]

    def __init__(self):
        self.calls = []

    def detect(self, frames, pixels, top_k):
        from extract.models.detector import Detections

        self.calls += [(Path(f.video.path).name, f.time) for f in frames]
        return [
            Detections(torch.tensor([[10 * f.time, 2.0, 10 * f.time + 20.0, 30.0]]), torch.tensor([0.9]), torch.tensor([1]))
            for f in frames
        ]


def test_a_detection_source_replaces_the_detector(tmp_path):
    from extract.features.detection import ModelDetections

    video = decode(write_gif(tmp_path / "d.gif", [100] * 25, size=(64, 72)), config=DecodeConfig(max_side=48))  # downscaled
    source = _FixedDetections()
    extractor = build_extractor(CONFIG, ["appearance", "objects", "trajectories"], detections=source)
    assert extractor.detections is source and not any(isinstance(m, ModelDetections) for m in extractor.modules())
    arrays = extractor.finish(extractor([video])[0], video).arrays()
    times = video.steps / video.sampling.fps
    assert sorted(t for _, t in source.calls) == sorted(set(times) | set(video.trajectory_steps / video.sampling.fps))
    sx, sy = video.scale
    boxes = arrays["detections/boxes"][:, 0]  # stored in the file's pixels
    ones = np.ones_like(times)
    np.testing.assert_allclose(boxes, np.stack([10 * times * sx, 2 * sy * ones, (10 * times + 20) * sx, 30 * sy * ones], 1), rtol=1e-6)
    assert (arrays["detections/num_boxes"] == 1).all() and set(arrays["trajectories/label_names"]) == {b"thing"}


def test_boxes_and_features_do_not_depend_on_the_batch_composition(tmp_path):
    """Bit for bit: each video's detections and features, whichever videos share its calls and
    in which order, with batched detection (4 frames a pass) and batches split by the video alone."""
    config = tiny_models(runtime={"batch_size": 4}, detector={"batch_size": 4})
    extractor = build_extractor(config, ["appearance", "objects", "motion"])
    videos = [  # different sizes, different lengths (full batches, power-of-two tails)
        decode(write_gif(tmp_path / "a.gif", [100] * 40, size=(72, 96))),
        decode(write_mp4(tmp_path / "b.mp4", 30, num_frames=100, size=(80, 64))),
        decode(write_gif(tmp_path / "c.gif", [100] * 7, size=(64, 64))),
    ]
    alone = [extractor([v])[0].arrays() for v in videos]
    for group in ([0, 1, 2], [2, 0], [1, 2, 0]):
        for i, out in zip(group, extractor([videos[j] for j in group])):
            got = out.arrays()
            for name, want in alone[i].items():
                assert got[name].tobytes() == want.tobytes(), (group, i, name)
