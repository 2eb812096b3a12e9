"""Pointwise convolutions on oneDNN when torch runs one intra-op thread.

PyTorch picks a CPU convolution's kernel per call (``use_mkldnn`` in ATen's ConvUtils.h). A
float32 convolution whose kernel is 1 x 1 in its last two dims (the 1x1 and 3x1x1 bottleneck
convolutions of ResNet and I3D), unstrided and undilated, with a batch under 16, goes to oneDNN
when torch runs more than one intra-op thread and to ATen's own im2col kernels
(``slow_conv3d``, ``thnn_conv2d``) when it runs one. The pipeline's CPU model workers run one
thread each (``features.runtime.auto_threads``), where those kernels made the tiny preset's
I3D 1.9x and its ResNet-50 1.8x slower per clip or frame than oneDNN at one thread (batches
2-7 on a 2-vCPU AMD EPYC; ``aten::slow_conv3d_forward`` was two thirds of I3D's time).

``use_onednn_pointwise`` makes exactly those calls take oneDNN, so a model computes at one
thread the bits torch computes for it at two (tested against ``F.conv2d``/``F.conv3d`` at two
threads); every other call, autocast and ``torch.backends.mkldnn.enabled = False`` included,
goes through ``nn.Conv2d``/``nn.Conv3d`` unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _needs_onednn(conv: nn.Conv2d | nn.Conv3d, input: Tensor) -> bool:
    """True when torch would run this call on oneDNN at two threads but not at one."""
    if input.device.type != "cpu" or input.dtype != torch.float32 or input.dim() != conv.weight.dim():
        return False
    if torch.get_num_threads() != 1 or torch.is_autocast_enabled("cpu") or not torch.backends.mkldnn.enabled:
        return False
    pointwise = conv.kernel_size[-1] == 1 and conv.kernel_size[-2] == 1
    plain = not isinstance(conv.padding, str) and all(s == 1 for s in conv.stride) and all(d == 1 for d in conv.dilation)
    if not (pointwise and plain and input.shape[0] < 16):
        return False  # the thread count does not decide these calls
    # torch's second condition (its own kernel is faster on one small image), at any thread count:
    return conv.groups > 1 or input.shape[0] > 1 or input.shape[:4].numel() > 20480


class _OneDNNPointwise:
    """The routing of ``_conv_forward``; mixed into the ``nn.Conv2d``/``nn.Conv3d`` subclasses below."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if _needs_onednn(self, input):
            return torch.mkldnn_convolution(input, weight, bias, self.padding, self.stride, self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


class OneDNNConv2d(_OneDNNPointwise, nn.Conv2d):
    """``nn.Conv2d`` whose pointwise calls at one thread run on oneDNN (module docstring)."""


class OneDNNConv3d(_OneDNNPointwise, nn.Conv3d):
    """``nn.Conv3d`` whose pointwise calls at one thread run on oneDNN (module docstring)."""


_ROUTED = {nn.Conv2d: OneDNNConv2d, nn.Conv3d: OneDNNConv3d}
_PLAIN = {routed: plain for plain, routed in _ROUTED.items()}


def use_onednn_pointwise(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch ``model``'s ``nn.Conv2d``/``nn.Conv3d`` (zero padding) to the classes above, or
    back with ``enabled=False``; in place, parameters and state dict untouched. Returns ``model``."""
    swap = _ROUTED if enabled else _PLAIN
    for module in model.modules():
        if type(module) in swap and module.padding_mode == "zeros":
            module.__class__ = swap[type(module)]
    return model
