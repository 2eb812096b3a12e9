"""I3D-ResNet-50 motion trunk (pytorchvideo ``i3d_r50``): the res5 clip feature map.

MASN (section 4.2) feeds I3D the 8 grid frames around each appearance step and uses the
last convolutional map: time-averaged and pooled for the global motion vector, RoIAligned
on the appearance boxes for motion objects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from extract.models.weights import WeightsSpec, load_state_dict

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

MOTION_WEIGHTS = {
    "i3d_r50": WeightsSpec("pytorchvideo:i3d_r50 (Kinetics-400, 8x8)", "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth"),
}


class MotionNet(nn.Module):
    """pytorchvideo ResNet blocks without the classification head."""

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.register_buffer("mean", torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, clips: Tensor) -> Tensor:
        """
        Args:
            clips (Tensor[B, 3, L, S, S]): RGB in [0, 1], L = window (8).
        Returns:
            Tensor[B, 2048, L/2, S/32, S/32]: the res5 map.
        """
        return self.blocks((clips - self.mean) / self.std)


def build_motion(*, arch: str, weights: Path | None) -> MotionNet:
    """pytorchvideo I3D; random initialisation (current RNG state) when ``weights`` is None."""
    import warnings

    with warnings.catch_warnings():
        # pytorchvideo 0.1.5 calls torch.jit.script at import time, which torch 2.14 deprecates.
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
        from pytorchvideo.models.hub.resnet import i3d_r50

    if arch not in MOTION_WEIGHTS:
        raise ValueError(f"motion arch must be one of {sorted(MOTION_WEIGHTS)}, got {arch!r}")
    model = i3d_r50(pretrained=False)
    if weights is not None:
        model.load_state_dict(load_state_dict(weights))
    return MotionNet(model.blocks[:-1]).eval()
