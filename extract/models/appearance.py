"""ResNet appearance trunk: the global avgpool vector and the C5 map from one forward pass.

MASN (Seo et al., ACL 2021, section 4.2) uses ImageNet ResNet-152 features of every 4th
frame at 6 fps; object features are RoIAligned on the same C5 map.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from extract.models.weights import WeightsSpec, load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

APPEARANCE_WEIGHTS = {
    "resnet152": WeightsSpec("torchvision:ResNet152_Weights.IMAGENET1K_V2", "https://download.pytorch.org/models/resnet152-f82ba261.pth"),
    "resnet50": WeightsSpec("torchvision:ResNet50_Weights.IMAGENET1K_V2", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"),
}


class AppearanceNet(nn.Module):
    """ResNet up to layer4 (stride 32).

    Args:
        trunk: a torchvision ResNet; its avgpool and fc are not used.
    """

    stride = 32

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layers = nn.Sequential(trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """
        Args:
            images (Tensor[B, 3, S, S]): RGB in [0, 1].
        Returns:
            (global (Tensor[B, 2048]), c5 (Tensor[B, 2048, ceil(S/32), ceil(S/32)]))
        """
        c5 = self.layers(self.stem((images - self.mean) / self.std))
        return c5.mean(dim=(2, 3)), c5


def build_appearance(*, arch: str, weights: Path | None) -> AppearanceNet:
    """torchvision ResNet trunk; random initialisation (current RNG state) when ``weights`` is None."""
    from torchvision import models

    if arch not in APPEARANCE_WEIGHTS:
        raise ValueError(f"appearance arch must be one of {sorted(APPEARANCE_WEIGHTS)}, got {arch!r}")
    trunk = getattr(models, arch)(weights=None)
    if weights is not None:
        trunk.load_state_dict(load_state_dict(weights))
    return AppearanceNet(trunk).eval()
