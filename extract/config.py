"""One typed config per run, loaded from ``pipelines/<dataset>.yaml`` plus command-line overrides.

One settings class per concern (sampling, decode, appearance, detector, motion, RoI, linking,
runtime). A preset (``paper``, ``tiny``) is expanded into concrete architectures and input sizes
when the config is validated; values given explicitly win over the preset's. Relative paths
resolve against the working directory. The resolved config is saved into run.json and the
shards, so every output says how it was made.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import os
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from extract.linking import LinkConfig
from extract.names import APPEARANCE_ARCHS, DATASETS, DETECTOR_ARCHS, EXECUTORS, MOTION_ARCHS, PRESETS as PRESET_NAMES, STAGES
from extract.sampling import SamplingConfig
from extract.video import DecodeConfig

# What each preset expands to. ``paper`` follows MASN (Seo et al., ACL 2021); ``tiny`` runs on a laptop CPU.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "appearance": {"arch": "resnet152", "size": 224},
        "detector": {"arch": "fasterrcnn_resnet50_fpn_v2", "min_size": 600, "max_size": 1000},
        "motion": {"arch": "i3d_r50", "size": 224},
    },
    "tiny": {
        "appearance": {"arch": "resnet50", "size": 96},
        "detector": {"arch": "fasterrcnn_mobilenet_v3_large_320_fpn", "min_size": 128, "max_size": 192},
        "motion": {"arch": "i3d_r50", "size": 64},
    },
}
assert set(PRESETS) == set(PRESET_NAMES)


# Where each key of the former ``model:`` section went (0.1 configs): named in the error for such a config.
MOVED_MODEL_KEYS = {
    "preset": "preset", "weights": "weights", "seed": "seed",
    "device": "runtime.device", "threads": "runtime.threads", "model_workers": "runtime.model_workers",
    "batch_size": "runtime.batch_size",
    "channels_last": "runtime.channels_last", "amp": "runtime.amp",
    "num_objects": "detector.num_objects", "detector_score_thresh": "detector.score_thresh",
    "detector_candidates": "detector.candidates", "trajectory_candidates": "detector.trajectory_candidates",
    "agnostic_nms_iou": "detector.agnostic_nms_iou", "detector_batch_size": "detector.batch_size",
    "detector_rpn_pre_nms_top_n": "detector.rpn_pre_nms_top_n",
    "detector_rpn_post_nms_top_n": "detector.rpn_post_nms_top_n",
    "detector_min_size": "detector.min_size", "detector_max_size": "detector.max_size",
    "roi_output_size": "roi.output_size", "roi_sampling_ratio": "roi.sampling_ratio", "fast_roi": "roi.fast",
}


class ConfigError(ValueError):
    """A config that does not validate; the message names the file, the keys and the reasons."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppearanceConfig(_Strict):
    """ResNet appearance features (per step, and the C5 map the RoIs are pooled from). Set by the preset."""

    arch: Literal[APPEARANCE_ARCHS]  # torchvision ResNet whose avgpool is 2048-d
    size: int = Field(ge=32, le=4096)  # square ResNet input side; C5 is size/32


class MotionConfig(_Strict):
    """I3D motion features, one clip per step. Set by the preset."""

    arch: Literal[MOTION_ARCHS]  # pytorchvideo I3D builder
    size: int = Field(ge=32, le=4096)  # square I3D input side


class DetectorConfig(_Strict):
    """Faster R-CNN boxes: ``num_objects`` per step, ``trajectory_candidates`` per trajectory frame."""

    arch: Literal[DETECTOR_ARCHS]  # torchvision Faster R-CNN builder; set by the preset
    min_size: int = Field(ge=32, le=4096)  # detector's own resize: shorter side; set by the preset. CHANGES boxes
    max_size: int = Field(ge=32, le=8192)  # ... longer side cap; set by the preset. CHANGES boxes
    num_objects: int = Field(10, ge=1, le=1000)  # N boxes per step (MASN: 10)
    score_thresh: float = Field(0.001, ge=0.0, lt=1.0)  # low so that real frames yield num_objects boxes
    candidates: int = Field(100, ge=1, le=10000)  # detections out of the detector's per-class NMS
    trajectory_candidates: int = Field(50, ge=1, le=10000)  # boxes per trajectory frame offered to seq-NMS;
    #                                                         a step's boxes are the first num_objects of them
    agnostic_nms_iou: float = Field(0.5, gt=0.0, le=1.0)  # class-agnostic NMS before taking the top num_objects
    batch_size: int = Field(0, ge=0, le=1024)  # frames of one video per detector pass (the split of
    #                                            sampling.step_batches, so boxes never depend on other videos);
    #                                            0 = auto: 8 on CUDA, 4 on a CPU (features.runtime.detector_batch)
    rpn_pre_nms_top_n: int | None = Field(None, ge=1)  # RPN proposals per level before NMS; None = the
    #                                                    architecture's default. Fewer is faster and CHANGES boxes
    rpn_post_nms_top_n: int | None = Field(None, ge=1)  # proposals into the box head (mobilenet 150, resnet
    #                                                     1000); the box head dominates detector time. CHANGES boxes

    @model_validator(mode="after")
    def _consistent(self) -> DetectorConfig:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be >= min_size ({self.min_size})")
        if not self.num_objects <= self.trajectory_candidates <= self.candidates:
            raise ValueError(
                f"need num_objects <= trajectory_candidates <= candidates (a step's boxes are the first num_objects "
                f"of a frame's trajectory candidates, which come out of the detector's candidates); got "
                f"{self.num_objects}, {self.trajectory_candidates}, {self.candidates}")
        return self


class RoIConfig(_Strict):
    """RoIAlign of each box on the ResNet C5 map, averaged to one 2048-d vector."""

    output_size: int = Field(7, ge=1, le=64)  # RoIAlign grid side
    sampling_ratio: int = Field(2, ge=1, le=16)  # RoIAlign samples per bin side
    fast: bool = False  # RoIAlign + mean as one weight map per box and a matmul (float64 sums): tens of
    #                     times faster on a CPU; differs from torchvision's roi_align by its float32
    #                     rounding (a few ulps, ~3e-7 relative; 3e-5 absolute on random-weight features)


class RuntimeConfig(_Strict):
    """Where and how the models run (extract bench measures these). None of these changes float32
    features beyond float rounding unless it says so."""

    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")  # auto = cuda when available, else cpu
    threads: int = Field(0, ge=0, le=1024)  # torch intra-op CPU threads; 0 = auto (on a CPU, the cores
    #                                         shared among model_workers); run.json records the count used
    model_workers: int = Field(2, ge=1, le=64)  # threads that take the model tasks (I3D, ResNet batches,
    #                                             detector frames, RoIAlign) side by side; results do not depend on it
    batch_size: int = Field(16, ge=1, le=4096)  # steps per ResNet/I3D pass: each video's steps split into
    #                                             full batches then powers of two (sampling.step_batches),
    #                                             never padded, never mixed with another video's: a video's
    #                                             features do not depend on its companions (bit for bit)
    cudnn: Literal["deterministic", "benchmark"] = "deterministic"  # CUDA only: deterministic = the same
    #                                             algorithms every run (the same bits run to run); benchmark =
    #                                             timed per shape at start-up, faster, bits may change between runs
    channels_last: bool = True  # NDHWC memory format for I3D (oneDNN: faster, same float32 bits) and,
    #                             on CUDA only, NHWC for ResNet (on a CPU it moves features by ~2e-6 relative)
    amp: bool = False  # bf16 autocast of ResNet, I3D and the detector backbone (meant for CUDA):
    #                    CHANGES FEATURES (bf16 precision); outputs are still stored as float32


class DetectionsConfig(_Strict):
    """External boxes (``--detections``, ``extract.detections``) used instead of the detector."""

    path: Path | None = None  # a directory of <key>.json or one HDF5 file; None = run the detector.
    #                           Relative: against data_root in a YAML, the working directory on the CLI
    missing: Literal["fail", "empty"] = "fail"  # a video without detections: fails, or gets zero boxes
    tolerance_s: float | None = Field(None, ge=0.0, le=60.0)  # largest |frame time - detection time|;
    #                                                           None = half a grid step (0.5 / fps)


class RunConfig(_Strict):
    dataset: Literal[DATASETS]
    data_root: Path | None = None  # annotations root (videos under it unless `videos` is set)
    videos: Path | None = None  # directory of the video files
    out: Path = Field(Path("out/demo"), validate_default=True)  # output directory (shards, manifest, masn/, run.json)
    stages: tuple[str, ...] = ("appearance", "objects", "motion")  # the MASN features; trajectories is opt-in
    executor: Literal[EXECUTORS] = "local"  # local: this process; ray: a Ray cluster
    address: str | None = None  # Ray cluster address; None starts a local cluster
    num_gpus: int | None = Field(None, ge=0)  # ray: model actors, one GPU each; None = every GPU in the
    #                                           cluster; 0 (or no GPU, or device cpu) = one CPU actor
    decode_workers: int | None = Field(None, ge=1, le=1024)  # decoding processes (local) or tasks (ray) at once;
    #   None = local: the cores left after the model threads, at least 1; ray: as many as free CPUs allow
    no_progress_timeout_s: float = 600.0  # ray: fail when no video moves for this long (-1 = never)
    limit: int | None = Field(None, ge=1)  # only the first N videos (sorted by key); None = all
    max_failures: int = Field(0, ge=0)  # exit non-zero when more videos than this fail
    reextract: bool = False  # extract every video again, even those done in OUT with other settings
    check_shards: bool = False  # before resuming, recompute each done shard's sha256 (size is always checked)
    shard_videos: int = Field(8, ge=1, le=100000)  # videos per shard: work lost to a crash is at most this
    prefetch: int = Field(4, ge=1, le=1024)  # videos decoded ahead of the models (local: at least 4 per decode worker)
    preset: Literal[PRESET_NAMES] = "paper"  # fills appearance, detector and motion architectures and sizes
    weights: str = Field("pretrained", min_length=1)  # pretrained (torch.hub cache) | random (smoke tests only) | a directory
    seed: int = Field(0, ge=0, le=2**62)  # initialises random weights; the same seed gives the same features
    sampling: SamplingConfig = SamplingConfig()  # the 6 fps grid (MASN's defaults)
    decode: DecodeConfig = DecodeConfig()  # frame-size cap and part length: bound decoding memory
    appearance: AppearanceConfig  # from the preset unless given
    detector: DetectorConfig  # from the preset unless given
    motion: MotionConfig  # from the preset unless given
    roi: RoIConfig = RoIConfig()  # RoIAlign of the object features
    linking: LinkConfig = LinkConfig()  # improved seq-NMS of the trajectories stage
    runtime: RuntimeConfig = RuntimeConfig()  # device, threads, batching
    detections: DetectionsConfig = DetectionsConfig()  # external boxes instead of the detector

    @model_validator(mode="before")
    @classmethod
    def _resolve_detections(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("detections") is None:
            return data
        section = data["detections"]
        section = {"path": section} if isinstance(section, (str, Path)) else dict(section)  # `detections: DIR`
        path = section.get("path")
        if path is not None and not Path(path).expanduser().is_absolute():
            # A YAML's relative path is against data_root (the CLI passes an absolute one).
            base = Path(data["data_root"]).expanduser() if data.get("data_root") is not None else Path()
            section["path"] = Path(os.path.abspath(base / Path(path).expanduser()))
        return dict(data, detections=section)

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "paper")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
        data = dict(data)
        for section, values in PRESETS[preset].items():
            given = data.get(section, {})
            if isinstance(given, dict):
                data[section] = values | given
        return _decode_for_models(data)

    @field_validator("data_root", "videos", "out")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Against the working directory, as a shell would; symlinks are kept.
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @field_validator("no_progress_timeout_s")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value != -1 and not value > 0:
            raise ValueError(f"must be > 0 seconds, or -1 for never; got {value}")
        return value

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value):
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        unknown = [s for s in value if s not in STAGES]
        if unknown or not value:
            raise ValueError(f"stages must be a non-empty subset of {list(STAGES)}, got {list(value)}")
        return tuple(s for s in STAGES if s in value)


def _section(data: dict, name: str) -> dict:
    """A config section as a dict, whether given as a dict, a model or a dataclass."""
    value = data.get(name, {})
    if isinstance(value, BaseModel):
        return value.model_dump()
    if is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return dict(value) if isinstance(value, dict) else {}


def _decode_for_models(data: dict) -> dict:
    """``decode`` told the model batch (parts hold whole batches) and the model outputs kept per
    step (the part budget counts them): a ResNet C5 and an I3D res5 map of 2048 x (size/32)^2 floats."""
    runtime, decode = _section(data, "runtime"), _section(data, "decode")
    sizes = [_section(data, s).get("size") for s in ("appearance", "motion")]
    step_bytes = sum(2048 * math.ceil(size / 32) ** 2 * 4 for size in sizes if isinstance(size, int))
    decode.update(batch_steps=runtime.get("batch_size", RuntimeConfig.model_fields["batch_size"].default),
                  step_kb=math.ceil(step_bytes / 1024))
    return data | {"decode": decode}


def default_pipeline(dataset: str) -> Path | importlib.resources.abc.Traversable:
    """The shipped ``<dataset>.yaml``: package data ``extract.pipelines`` of an install (the top-level
    ``pipelines/`` directory mapped into the wheel), or that directory itself in a source checkout."""
    try:
        root = importlib.resources.files("extract.pipelines")
    except ModuleNotFoundError:  # the checkout is on sys.path, not installed
        root = Path(__file__).resolve().parent.parent / "pipelines"
    return root / f"{dataset}.yaml"


def resolve_runtime(runtime: RuntimeConfig) -> RuntimeConfig:
    """``runtime`` with the device and thread count this process will actually use.

    ``device: auto`` becomes ``cpu`` or ``cuda``; ``threads: 0`` becomes the count
    ``configure_threads`` sets (so configuring the resolved runtime sets the same count).
    """
    from extract.features.runtime import auto_threads, resolve_device

    device = resolve_device(runtime.device)
    threads = runtime.threads or auto_threads(device, runtime.model_workers)
    return runtime.model_copy(update={"device": str(device), "threads": threads})


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _drop_none(overrides: dict) -> dict:
    """Command-line overrides without the options that were not given (None), at any depth."""
    clean = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            clean[key] = value
    return clean


def _known_keys(loc: tuple) -> list[str]:
    """The valid keys of the config section at ``loc`` (a pydantic error location), or [] if unknown."""
    model: Any = RunConfig
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif is_dataclass(model) and part in {f.name for f in fields(model)}:
            model = {f.name: f.type for f in fields(model)}[part]
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    if is_dataclass(model):
        return [f.name for f in fields(model)]
    return []


def explain(error: ValidationError, source: str) -> ConfigError:
    """One line per problem, with the dotted key and, for a misspelt key, the nearest valid ones."""
    lines = []
    for e in error.errors():
        loc = tuple(str(part) for part in e["loc"])
        key = ".".join(loc) or "(top level)"
        if loc == ("model",) and isinstance(e.get("input"), dict):
            moved = ", ".join(f"model.{k} -> {MOVED_MODEL_KEYS.get(k, '?')}" for k in e["input"])
            lines.append(f"  model: the model section was split into top-level keys and sections ({moved})")
        elif e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            known = _known_keys(loc[:-1])
            near = difflib.get_close_matches(loc[-1], known, n=3)
            hint = f"did you mean {' or '.join(repr(n) for n in near)}?" if near else f"valid keys: {', '.join(known)}"
            lines.append(f"  {key}: unknown key ({hint})")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return ConfigError(f"{source}: invalid configuration:\n" + "\n".join(lines))


def _read_yaml(source) -> Any:
    """The YAML document in ``source``; ConfigError naming the file and line of a syntax error."""
    try:
        return yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text (byte {e.start}): save the config as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{source}:{where}: YAML syntax error: {problem}; fix the file "
                          "(indentation, a bracket or quote that does not close)") from None


def load_config(dataset: str, *, config_path: Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults of ``pipelines/<dataset>.yaml`` (or ``config_path``), then ``overrides`` on top.

    ``overrides`` is nested like the YAML (``{"runtime": {"device": "cpu"}}``); None values are
    ignored. Raises ConfigError naming the file and every bad key.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    if config_path is not None and not Path(config_path).is_file():
        raise FileNotFoundError(f"config file {config_path} does not exist")
    source = config_path or default_pipeline(dataset)
    if not source.is_file():
        raise FileNotFoundError(f"no default config {source} for dataset {dataset!r}")
    raw = _read_yaml(source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = deep_merge(raw, {"dataset": dataset})
    if isinstance(raw.get("detections"), str):  # `detections: DIR`, before --detections-missing merges in
        raw["detections"] = {"path": raw["detections"]}
    try:
        return RunConfig.model_validate(deep_merge(raw, _drop_none(overrides or {})))
    except ValidationError as e:
        raise explain(e, f"{source} with the command-line options") from e
