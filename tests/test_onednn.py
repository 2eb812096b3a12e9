"""Pointwise convolutions on oneDNN at one thread (extract.models.onednn): the bits torch computes
at two threads, through oneDNN rather than ATen's slow im2col kernels."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from extract.models.appearance import build_appearance
from extract.models.motion import build_motion
from extract.models.onednn import OneDNNConv2d, OneDNNConv3d, use_onednn_pointwise


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def conv_ops(fn) -> set[str]:
    """The aten convolution kernels ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages() if "conv" in e.key and "aten::" in e.key}


# (conv, input shape, routed): the calls torch sends to oneDNN at two threads and to its own
# kernel at one are routed; every other call must be exactly torch's own at one thread.
CASES = [
    (nn.Conv2d(64, 32, 1), (4, 64, 12, 12), True),
    (nn.Conv2d(64, 32, 1, groups=4), (1, 64, 5, 5), True),
    (nn.Conv3d(32, 16, (3, 1, 1), padding=(1, 0, 0)), (2, 32, 4, 8, 8), True),  # I3D's temporal convolutions
    (nn.Conv3d(32, 16, 1), (7, 32, 4, 4, 4), True),
    (nn.Conv2d(2048, 64, 1, bias=False), (1, 2048, 3, 3), False),  # one small image: torch's kernel at any count
    (nn.Conv2d(64, 32, 1, stride=2), (3, 64, 12, 12), False),  # strided: oneDNN at any count
    (nn.Conv2d(16, 8, 3, padding=1), (2, 16, 9, 9), False),  # 3x3: oneDNN at any count
    (nn.Conv3d(32, 16, 1), (16, 32, 2, 4, 4), False),  # batch 16: oneDNN at any count
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_routed_calls_at_one_thread_compute_torchs_two_thread_bits_others_are_untouched(case, channels_last):
    torch.manual_seed(case)
    conv, shape, routed = CASES[case]
    conv = conv.eval()
    fmt = (torch.channels_last if len(shape) == 4 else torch.channels_last_3d) if channels_last else torch.contiguous_format
    x = torch.randn(shape).contiguous(memory_format=fmt)
    functional = F.conv2d if len(shape) == 4 else F.conv3d
    with torch.inference_mode():
        with threads(2):  # the oracle of a routed call: torch's own choice with two threads
            two = functional(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        with threads(1):
            one, plain_ops = conv(x), conv_ops(lambda: conv(x))
            use_onednn_pointwise(conv)
            ops = conv_ops(lambda: conv(x))
            out = conv(x)
    assert type(conv) in (OneDNNConv2d, OneDNNConv3d)
    assert torch.equal(out, two if routed else one)
    assert ops == ({"aten::mkldnn_convolution"} if routed else plain_ops)
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-5)  # torch's two kernels agree up to rounding


def test_one_thread_i3d_and_resnet_compute_the_two_thread_bits_without_the_slow_kernels():
    torch.manual_seed(0)
    motion = build_motion(arch="i3d_r50", weights=None).to(memory_format=torch.channels_last_3d)
    appearance = build_appearance(arch="resnet50", weights=None).eval()
    clips = torch.rand(3, 3, 8, 64, 64).contiguous(memory_format=torch.channels_last_3d)
    frames = torch.rand(3, 3, 96, 96)
    with torch.inference_mode():
        with threads(2):
            expected_motion, (expected_pooled, _) = motion(clips), appearance(frames)
        with threads(1):
            assert "aten::slow_conv3d_forward" in conv_ops(lambda: motion(clips))  # what the routing replaces
            use_onednn_pointwise(motion), use_onednn_pointwise(appearance)
            ops = conv_ops(lambda: (motion(clips), appearance(frames)))
            routed_motion, (routed_pooled, _) = motion(clips), appearance(frames)
    assert not {"aten::slow_conv3d_forward", "aten::_slow_conv2d_forward", "aten::thnn_conv2d"} & ops, ops
    assert torch.equal(routed_motion, expected_motion)
    assert torch.equal(routed_pooled, expected_pooled)


def test_autocast_and_disabled_onednn_take_torchs_own_path():
    conv = use_onednn_pointwise(nn.Conv2d(8, 4, 1).eval())
    x = torch.randn(2, 8, 6, 6)
    with torch.inference_mode(), threads(1):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv(x).dtype == torch.bfloat16  # autocast still casts: oneDNN is not called behind its back
        with torch.backends.mkldnn.flags(enabled=False):
            assert "aten::mkldnn_convolution" not in conv_ops(lambda: conv(x))


def test_switching_back_keeps_parameters_and_state_dict():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv3d(4, 2, 1), nn.Conv2d(2, 2, 3, padding_mode="reflect"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    use_onednn_pointwise(model)
    assert [type(m) for m in model] == [OneDNNConv2d, nn.ReLU, OneDNNConv3d, nn.Conv2d]  # reflect padding: left alone
    use_onednn_pointwise(model, enabled=False)
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.Conv3d, nn.Conv2d]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
