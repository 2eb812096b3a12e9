"""Run configs: presets expand to concrete values, bounds and typos fail clearly, paths are absolute,
the shipped pipelines validate, and the name registry agrees with what the code accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extract import names
from extract.cli import app
from extract.config import MOVED_MODEL_KEYS, PRESETS, ConfigError, RunConfig, default_pipeline, load_config, resolve_runtime


def test_every_shipped_pipeline_validates():
    for dataset in names.DATASETS:
        config = load_config(dataset)
        assert config.dataset == dataset and config.out.is_absolute()


def test_preset_expands_to_architectures_and_sizes_and_explicit_values_win():
    tiny = load_config("demo", overrides={"preset": "tiny", "detector": {"min_size": 100}})
    assert (tiny.appearance.arch, tiny.appearance.size) == ("resnet50", 96)
    assert (tiny.motion.arch, tiny.motion.size) == ("i3d_r50", 64)
    assert (tiny.detector.arch, tiny.detector.min_size, tiny.detector.max_size) == (
        "fasterrcnn_mobilenet_v3_large_320_fpn", 100, 192)
    paper = RunConfig(dataset="tgif")
    assert (paper.appearance.arch, paper.appearance.size, paper.detector.arch) == ("resnet152", 224, "fasterrcnn_resnet50_fpn_v2")
    # The dump is concrete and reloads to the same config.
    dumped = json.loads(tiny.model_dump_json())
    assert dumped["appearance"] == {"arch": "resnet50", "size": 96}
    assert RunConfig.model_validate(dumped) == tiny


@pytest.mark.parametrize(("overrides", "message"), [
    ({"limit": -1}, "limit: Input should be greater than or equal to 1"),
    ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
    ({"detector": {"trajectory_candidates": 0}}, "detector.trajectory_candidates: Input should be greater than or equal to 1"),
    ({"detector": {"trajectory_candidates": 5}}, "need num_objects <= trajectory_candidates <= candidates"),
    ({"detector": {"candidates": 20}}, "need num_objects <= trajectory_candidates <= candidates"),
    ({"detector": {"min_size": 300, "max_size": 200}}, "max_size (200) must be >= min_size (300)"),
    ({"detector": {"score_thresh": 1.5}}, "detector.score_thresh"),
    ({"appearance": {"size": 8}}, "appearance.size: Input should be greater than or equal to 32"),
    ({"appearance": {"arch": "vgg16"}}, "appearance.arch: Input should be 'resnet152' or 'resnet50'"),
    ({"runtime": {"batch_size": 0}}, "runtime.batch_size"),
    ({"runtime": {"threads": -1}}, "runtime.threads"),
    ({"runtime": {"device": "gpu"}}, "runtime.device"),
    ({"roi": {"output_size": 0}}, "roi.output_size"),
    ({"max_failures": -1}, "max_failures"),
    ({"shard_videos": 0}, "shard_videos"),
    ({"no_progress_timeout_s": 0}, "must be > 0 seconds, or -1 for never"),
    ({"seed": -1}, "seed"),
    ({"sampling": {"fps": 0}}, "fps and trajectory_fps must be positive"),
    ({"decode": {"part_steps": -1}}, "part_steps and step_kb must be >= 0"),
    ({"decode": {"part_mb": 0}}, "part_mb must be in 1 .. 65536"),
    ({"linking": {"link_iou": 2}}, "LinkConfig.link_iou"),
    ({"preset": "huge"}, "preset must be one of ['paper', 'tiny']"),
])
def test_out_of_bounds_values_are_rejected_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match="demo.yaml") as error:
        load_config("demo", overrides=overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"runtime": {"threds": 2}}, "runtime.threds: unknown key (did you mean 'threads'?)"),
    ({"detector": {"num_object": 5}}, "detector.num_object: unknown key (did you mean 'num_objects'?)"),
    ({"sampling": {"fsp": 3}}, "sampling.fsp: unknown key (did you mean 'fps'?)"),
    ({"linking": {"link_iuo": 0.3}}, "linking.link_iuo: unknown key (did you mean 'link_iou'?)"),
    ({"shard_video": 3}, "shard_video: unknown key (did you mean 'shard_videos'?)"),
    ({"model": {"batch_size": 4, "fast_roi": True}}, "model.batch_size -> runtime.batch_size, model.fast_roi -> roi.fast"),
])
def test_misspelt_or_moved_keys_name_the_right_one(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config("demo", overrides=overrides)
    assert message in str(error.value)


def test_typo_in_a_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("preset: tiny\nruntime:\n  devise: cpu\n")
    with pytest.raises(ConfigError, match=r"mine.yaml.*\n  runtime.devise: unknown key \(did you mean 'device'\?\)"):
        load_config("demo", config_path=path)


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("demo", overrides={"data_root": Path("d"), "out": Path("o")})
    assert config.data_root == tmp_path / "d" and config.out == tmp_path / "o"
    assert load_config("demo").out == tmp_path / "out" / "demo"  # the YAML's relative default too


def test_old_model_keys_all_have_a_new_home():
    config = RunConfig(dataset="demo")
    for new in MOVED_MODEL_KEYS.values():
        target = config
        for part in new.split("."):
            target = getattr(target, part)  # raises when a documented new path does not exist


def test_resolved_runtime_names_a_device_and_a_thread_count():
    runtime = resolve_runtime(load_config("demo", overrides={"runtime": {"device": "auto", "threads": 0}}).runtime)
    assert runtime.device in ("cpu", "cuda") and runtime.threads >= 1
    assert resolve_runtime(RunConfig(dataset="demo", runtime={"device": "cpu", "threads": 3}).runtime).threads == 3


def test_name_registry_matches_the_models_and_presets():
    from extract.models.appearance import APPEARANCE_WEIGHTS
    from extract.models.detector import DETECTOR_WEIGHTS
    from extract.models.motion import MOTION_WEIGHTS

    assert set(APPEARANCE_WEIGHTS) == set(names.APPEARANCE_ARCHS)
    assert set(DETECTOR_WEIGHTS) == set(names.DETECTOR_ARCHS)
    assert set(MOTION_WEIGHTS) == set(names.MOTION_ARCHS)
    assert set(PRESETS) == set(names.PRESETS)
    assert set(names.TGIF_TASK_ALIASES.values()) == set(names.TGIF_TASKS)
    repo = Path(__file__).resolve().parent.parent
    assert {p.stem for p in (repo / "pipelines").glob("*.yaml")} == set(names.DATASETS)
    for dataset in names.DATASETS:
        assert default_pipeline(dataset).read_text() == (repo / "pipelines" / f"{dataset}.yaml").read_text()


def test_cli_rejects_a_negative_limit_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["run", "--dataset", "demo", "--limit", "-1", "--data-root", str(tmp_path / "d"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "limit: Input should be greater than or equal to 1" in result.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()
