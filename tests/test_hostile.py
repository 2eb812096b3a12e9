"""Hostile inputs and output-side failures: each bad video fails alone with a precise reason,
a failing shard write leaves nothing partial, parallel runs on different OUTs do not interfere."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import assert_same_features, make_tgif, read_features, tiny_config
from extract.datasets.base import AnnotationError
from extract.masn_index import index_paths
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.store import OutputDir
from media import segfault_on_poison, write_gif, write_long_mp4, write_mp4


def write_audio_only_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_each_hostile_file_fails_alone_with_its_reason(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(videos / "png_named.gif", format="PNG")
    write_audio_only_mp4(videos / "audio_only.mp4")
    (videos / "zero.webm").write_bytes(b"")
    write_gif(videos / "vidéo à l'été.gif", [50, 80, 120] * 3, size=(64, 64))
    write_mp4(videos / "with space.mp4", 25, num_frames=30)
    summary = run_pipeline(tiny_config("folder", tmp_path / "out", videos=videos, max_failures=10))
    reasons = dict(summary.failures)
    assert reasons.keys() == {"png_named", "audio_only", "zero"}
    assert "not a GIF file" in reasons["png_named"] and "PNG" in reasons["png_named"]
    assert reasons["audio_only"] == "no video stream in the file (audio only?)"
    assert "empty file" in reasons["zero"]
    assert summary.done == 2
    with h5py.File(index_paths(tmp_path / "out" / "masn", "folder").appearance_global, "r") as f:
        assert sorted(f) == ["vidéo à l'été", "with space"]
        assert f["vidéo à l'été"].shape[1] == 2048
    assert verify_output(tmp_path / "out") == []


def test_annotation_problems_stop_before_any_work(tmp_path):
    data = make_tgif(tmp_path / "tgif", {"a": [50, 50], "b": [50, 50]})
    rows = (data / "Test_count_question.csv").read_text().splitlines()
    evil = rows[1].replace("a.gif", "a").split("\t")
    evil[0], evil[-1] = "../../etc/passwd", "c"
    (data / "Test_count_question.csv").write_text("\r\n".join([*rows, "\t".join(evil)]) + "\r\n")
    with pytest.raises(AnnotationError, match=r"Test_count_question\.csv.*escapes the data root"):
        run_pipeline(tiny_config("tgif", tmp_path / "out", data_root=data))
    assert not (tmp_path / "out").exists()


def test_annotation_rows_for_missing_videos_and_repeated_keys(tmp_path):
    data = make_tgif(tmp_path / "tgif", {"a": [50, 60, 70], "gone": None})
    with open(data / "Test_count_question.csv", "a", newline="") as f:
        f.write("a\tanother question about a ?\t3\ta\ta\r\n")  # a second question on key a
    summary = run_pipeline(tiny_config("tgif", tmp_path / "out", data_root=data, max_failures=1))
    assert summary.done == 1 and [k for k, _ in summary.failures] == ["gone"]
    done = [r for r in OutputDir(tmp_path / "out").read_manifest().values() if r["status"] == "done"]
    assert [r["key"] for r in done] == ["a"]


def _run_cli(out: Path, videos: Path, *extra: str, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(videos), "--out", str(out),
         "--preset", "tiny", "--weights", "random", "--stages", "appearance", *extra],
        capture_output=True, text=True, timeout=300, preexec_fn=preexec,
    )


def test_failing_shard_write_leaves_nothing_partial_and_resumes(tmp_path, folder_videos):
    out = tmp_path / "out"
    # A small file-size limit makes the shard write fail half-way with EFBIG, like a full disk.
    limit = 40_000

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = _run_cli(out, folder_videos, preexec=small_disk)
    assert failed.returncode == 1, failed.stderr
    assert "writing to" in failed.stderr and "rerun the same command to resume" in failed.stderr
    assert not list((out / "shards").glob("*.tmp")) and not list((out / "shards").glob("*.h5"))
    resumed = _run_cli(out, folder_videos)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 done, 0 failed, 0 skipped" in resumed.stdout
    assert verify_output(out) == []


def test_parallel_runs_on_different_outs_do_not_interfere(tmp_path, folder_videos):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--videos", str(folder_videos),
             "--out", str(tmp_path / name), "--preset", "tiny", "--weights", "random", "--stages", "appearance,motion"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name in ("one", "two")
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
    for name in ("one", "two"):
        assert verify_output(tmp_path / name) == []
    files = [index_paths(tmp_path / name / "masn", "folder") for name in ("one", "two")]
    with h5py.File(files[0].motion_global, "r") as a, h5py.File(files[1].motion_global, "r") as b:
        assert sorted(a) == sorted(b) == sorted(p.stem for p in folder_videos.iterdir())
        for key in a:
            np.testing.assert_array_equal(a[key][()], b[key][()])


@pytest.mark.slow
def test_repeated_sigkill_at_random_moments_loses_nothing(tmp_path):
    import random
    import signal
    import time

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):
        write_gif(videos / f"k{i}.gif", [70, 100] * (3 + i % 3), size=(64, 72 + 4 * i))
    config = tmp_path / "cfg.yaml"
    config.write_text("stages: [appearance, motion]\nshard_videos: 2\npreset: tiny\nweights: random\nruntime: {device: cpu, batch_size: 4}\n")

    def start(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "extract", "run", "--dataset", "folder", "--config", str(config),
             "--videos", str(videos), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    killed, rng = tmp_path / "killed", random.Random(7)
    manifest = killed / "manifest.jsonl"
    for attempt in range(4):
        proc = start(killed)
        # Kill at a random moment: during start-up, mid-group, or right around a commit.
        target = rng.randint(0, 6)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (manifest.exists() and len(manifest.read_text().splitlines()) >= target) or target == 0:
                time.sleep(rng.uniform(0, 1.5))
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = start(killed)
    assert final.wait(timeout=300) == 0
    reference = start(tmp_path / "reference")
    assert reference.wait(timeout=300) == 0
    done = OutputDir(killed).done()
    assert sorted(done) == [f"k{i}" for i in range(8)]
    assert not list((killed / "shards").glob("*.tmp"))
    assert verify_output(killed) == []
    ref_files = index_paths(tmp_path / "reference" / "masn", "folder")
    got_files = index_paths(killed / "masn", "folder")
    for role in ("appearance_global", "motion_global"):
        with h5py.File(getattr(got_files, role), "r") as got, h5py.File(getattr(ref_files, role), "r") as want:
            assert sorted(got) == sorted(want)
            for key in want:
                assert got[key][()].tobytes() == want[key][()].tobytes(), f"{role} {key}"


def test_long_video_streams_in_parts_with_the_same_features(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_mp4(videos / "long.mp4", 25, num_frames=375, size=(64, 80))  # 15 s: 90 grid frames, 23 steps
    write_gif(videos / "short.gif", [100] * 8, size=(64, 64))

    def run(out: str, part_steps: int):
        config = tiny_config("folder", tmp_path / out, videos=videos, stages="appearance,objects,motion,trajectories",
                             linking={"min_score": 0.0}, decode={"part_steps": part_steps})
        assert run_pipeline(config, progress=False).done == 2
        return OutputDir(tmp_path / out).done()

    parts = run("parts", 5)
    run("whole", 1000)
    # Parts hold whole model batches (8, 8, 4, 2 + 1 steps): the same batches as the whole video's.
    assert parts["long"]["parts"] == 4 and "parts" not in parts["short"]
    assert_same_features(tmp_path / "parts", tmp_path / "whole")
    long = read_features(tmp_path / "parts")["long"]
    assert long["appearance"].shape == (23, 2048) and long["motion_objects"].shape == (23, 10, 2048)
    assert len(long["trajectories/features"]) > 0 and long["trajectories/boxes"].shape[1] == 15


MEASURE = """
import json, resource, sys, tracemalloc
from pathlib import Path
from extract.config import load_config
from extract.pipeline import run_pipeline
config = load_config("folder", overrides=json.loads(sys.argv[1]))
tracemalloc.start()
done = run_pipeline(config, progress=False).done
print(json.dumps({"done": done, "traced_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_run(videos: Path, out: Path, stages: str, **overrides) -> dict:
    """Run the pipeline in a fresh process: videos done, peak numpy memory (tracemalloc: the
    decoded frames and features the pipeline holds) and peak RSS, both in MiB."""
    settings = {"videos": str(videos), "out": str(out), "stages": stages,
                "preset": "tiny", "weights": "random", "runtime": {"device": "cpu"}, **overrides}
    import json

    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(settings)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
def test_ten_minute_video_streams_in_memory_independent_of_length(tmp_path):
    runs = {}
    for minutes in (1, 10):
        videos = tmp_path / f"v{minutes}"
        videos.mkdir()
        write_long_mp4(videos / "talk.mp4", 60 * minutes, fps=30, size=(180, 320))
        # A small part budget (32 MiB: 32 steps a part here) streams both lengths in parts.
        runs[minutes] = measure_run(videos, tmp_path / f"out{minutes}", "appearance", decode={"part_mb": 32})
        assert runs[minutes]["done"] == 1
    held = 10 * 60 * 6 * 180 * 320 * 3 / 2**20  # MiB of the 10-minute grid frames, were they all held: 593
    print(f"peak numpy MiB {runs[1]['traced_mb']:.0f} -> {runs[10]['traced_mb']:.0f}, "
          f"peak RSS MiB {runs[1]['rss_mb']:.0f} -> {runs[10]['rss_mb']:.0f} (all frames: {held:.0f})")
    # 10x the length: the frames held stay one part's; only the features (8 KiB a step) grow.
    # Peak RSS is printed, not asserted: glibc keeps freed model buffers per thread, so it
    # varies by a few hundred MiB from run to run whatever the length.
    assert runs[10]["traced_mb"] - runs[1]["traced_mb"] < 0.05 * held


@pytest.mark.slow
def test_huge_frames_are_downscaled_in_bounded_memory(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_long_mp4(videos / "huge.mp4", 1.0, fps=12, size=(4096, 4096))
    write_gif(videos / "small.gif", [100] * 4, size=(64, 64))
    stages = "appearance,objects,motion"
    bounded = measure_run(videos, tmp_path / "bounded", stages)
    unbounded = measure_run(videos, tmp_path / "unbounded", stages, decode={"max_side": 0})
    print(f"peak RSS MiB: max_side 1024 {bounded['rss_mb']:.0f}, unbounded {unbounded['rss_mb']:.0f}")
    assert bounded["done"] == unbounded["done"] == 2
    assert bounded["rss_mb"] < unbounded["rss_mb"] - 300
    record = OutputDir(tmp_path / "bounded").done()["huge"]
    assert (record["width"], record["height"]) == (4096, 4096)
    arrays = read_features(tmp_path / "bounded")["huge"]
    boxes, spatial = arrays["detections/boxes"], arrays["spatial_features"]
    assert arrays["detections/num_boxes"].sum() > 0 and boxes.max() <= 4096
    # Boxes are in the file's pixels; the 6-d locations are the same boxes over the file's size.
    np.testing.assert_allclose(spatial[..., :4], boxes / 4096, atol=1e-6)


def test_decoder_crash_fails_that_video_alone(tmp_path):
    from extract.datasets.base import VideoRecord
    from extract.sampling import SamplingConfig
    from extract.video import DecodeConfig, DecodedVideo
    from extract.decode_pool import CRASHED, DecodePool

    paths = [write_gif(tmp_path / "a.gif", [100] * 4), write_gif(tmp_path / "poison.gif", [100] * 4),
             write_mp4(tmp_path / "b.mp4", 25, num_frames=30), write_gif(tmp_path / "c.gif", [50] * 6)]
    records = [VideoRecord(p.stem, p) for p in paths]
    decoder = DecodePool(SamplingConfig(), DecodeConfig(), decode=segfault_on_poison)
    try:
        handles = [decoder.submit(r) for r in records]  # all queued in the child that poison kills
        results = {r.key: decoder.result(r, h)[0] for r, h in zip(records, handles)}
        after = decoder.result(records[0], decoder.submit(records[0]))[0]  # the restarted child works
    finally:
        decoder.close()
    assert results["poison"].reason == CRASHED
    for key in ("a", "b", "c"):
        assert isinstance(results[key], DecodedVideo) and Path(results[key].path).stem == key
    assert isinstance(after, DecodedVideo)
