"""One typed config per run, loaded from ``pipelines/<dataset>.yaml`` plus command-line overrides.

The resolved config is saved into run.json and the shards, so every output says how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from extract.linking import LinkConfig
from extract.sampling import SamplingConfig
from extract.video import DecodeConfig

STAGES = ("appearance", "objects", "motion", "trajectories")
DATASETS = ("tgif", "msvd", "msrvtt", "nextqa", "folder", "demo", "demo-mc")
PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPreset(_Strict):
    """Architectures and input sizes; ``paper`` follows MASN, ``tiny`` runs on a laptop CPU."""

    appearance_arch: str  # torchvision ResNet whose avgpool is 2048-d
    appearance_size: int  # square ResNet input side; C5 is size/32
    detector_arch: str  # torchvision Faster R-CNN builder
    detector_min_size: int  # detector's own resize: shorter side
    detector_max_size: int  # ... longer side cap
    motion_arch: str  # pytorchvideo I3D builder
    motion_size: int  # square I3D input side


PRESETS: dict[str, ModelPreset] = {
    "paper": ModelPreset(
        appearance_arch="resnet152",
        appearance_size=224,
        detector_arch="fasterrcnn_resnet50_fpn_v2",
        detector_min_size=600,
        detector_max_size=1000,
        motion_arch="i3d_r50",
        motion_size=224,
    ),
    "tiny": ModelPreset(
        appearance_arch="resnet50",
        appearance_size=96,
        detector_arch="fasterrcnn_mobilenet_v3_large_320_fpn",
        detector_min_size=128,
        detector_max_size=192,
        motion_arch="i3d_r50",
        motion_size=64,
    ),
}


class ModelConfig(_Strict):
    preset: Literal["paper", "tiny"] = "paper"  # see PRESETS
    weights: str = "pretrained"  # pretrained (torch.hub cache) | random (smoke tests only) | a directory
    seed: int = 0  # initialises random weights; the same seed gives the same features
    device: str = "auto"  # auto = cuda when available, else cpu
    batch_size: int = Field(16, ge=1)  # frames (ResNet) or clips (I3D) per forward pass
    fixed_batch: bool = True  # pad every ResNet/I3D batch to batch_size: a video's features then do
    #                           not depend on which videos share its batch (bit for bit)
    detector_batch_size: int = Field(1, ge=1)  # equal-size frames per detector pass; 1 is batch-invariant
    num_objects: int = Field(10, ge=1)  # N boxes per step (MASN: 10)
    detector_score_thresh: float = 0.001  # low so that real frames yield num_objects boxes
    detector_candidates: int = 100  # detections out of the detector's per-class NMS
    trajectory_candidates: int = 50  # boxes per trajectory frame offered to seq-NMS
    agnostic_nms_iou: float = 0.5  # class-agnostic NMS before taking the top num_objects
    roi_output_size: int = 7  # RoIAlign grid, averaged to one vector per box
    roi_sampling_ratio: int = 2  # RoIAlign samples per bin side
    threads: int = 0  # torch intra-op CPU threads; 0 = auto (on a CPU, the cores shared among model_workers)
    # Throughput settings (extract bench measures them). None of these changes float32 features
    # beyond float rounding unless it says so.
    model_workers: int = Field(2, ge=1)  # threads that take the model tasks (I3D, ResNet batches, detector
    #                                      frames, RoIAlign) side by side; results do not depend on it
    channels_last: bool = True  # NDHWC memory format for I3D (oneDNN: faster, same float32 bits) and,
    #                             on CUDA only, NHWC for ResNet (on a CPU it moves features by ~2e-6 relative)
    fast_roi: bool = False  # RoIAlign + mean as one weight map per box and a matmul (float64 sums): tens of
    #                         times faster on a CPU; differs from torchvision's roi_align by its float32
    #                         rounding (a few ulps, ~3e-7 relative; 3e-5 absolute on random-weight features)
    amp: bool = False  # bf16 autocast of ResNet, I3D and the detector backbone (meant for CUDA):
    #                    CHANGES FEATURES (bf16 precision); outputs are still stored as float32
    detector_rpn_pre_nms_top_n: int | None = None  # RPN proposals per level before NMS; None = the
    #                                                architecture's default. Fewer is faster and CHANGES boxes
    detector_rpn_post_nms_top_n: int | None = None  # proposals into the box head (mobilenet 150, resnet 1000);
    #                                                 the box head dominates detector time. CHANGES boxes
    detector_min_size: int | None = None  # override the preset's detector input size (shorter side); CHANGES boxes
    detector_max_size: int | None = None  # ... and its longer-side cap; CHANGES boxes

    @property
    def architecture(self) -> ModelPreset:
        return PRESETS[self.preset]


class RunConfig(_Strict):
    dataset: Literal["tgif", "msvd", "msrvtt", "nextqa", "folder", "demo", "demo-mc"]
    data_root: Path | None = None  # annotations root (videos under it unless `videos` is set)
    videos: Path | None = None  # directory of the video files
    out: Path = Path("out/demo")  # output directory (shards, manifest, masn/, run.json)
    stages: tuple[str, ...] = ("appearance", "objects", "motion")
    executor: Literal["local", "ray"] = "local"
    address: str | None = None  # Ray cluster address; None starts a local cluster
    num_gpus: int | None = Field(None, ge=0)  # ray: model actors, one GPU each; None = every GPU in the
    #                                           cluster; 0 (or no GPU, or device cpu) = one CPU actor
    decode_workers: int | None = Field(None, ge=1)  # ray: decode tasks at once; None = as many as free CPUs allow
    no_progress_timeout_s: float = 600.0  # ray: fail when no video moves for this long (-1 = never)
    limit: int | None = None  # only the first N videos (sorted by key)
    max_failures: int = 0  # exit non-zero when more videos than this fail
    shard_videos: int = Field(8, ge=1)  # videos per shard: work lost to a crash is at most this
    prefetch: int = Field(4, ge=1)  # videos decoded ahead of the models
    sampling: SamplingConfig = SamplingConfig()
    decode: DecodeConfig = DecodeConfig()  # frame-size cap and part length: bound decoding memory
    model: ModelConfig = ModelConfig()
    linking: LinkConfig = LinkConfig()  # improved seq-NMS of the trajectories stage

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value):
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        unknown = [s for s in value if s not in STAGES]
        if unknown or not value:
            raise ValueError(f"stages must be a non-empty subset of {list(STAGES)}, got {list(value)}")
        return tuple(s for s in STAGES if s in value)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(dataset: str, *, config_path: Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults of ``pipelines/<dataset>.yaml`` (or ``config_path``), then ``overrides`` on top.

    ``overrides`` is nested like the YAML (``{"model": {"preset": "tiny"}}``); None values are ignored.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    path = config_path or PIPELINES_DIR / f"{dataset}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = _merge(raw, {"dataset": dataset})
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    clean = {k: ({kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v) for k, v in clean.items()}
    return RunConfig.model_validate(_merge(raw, clean))
