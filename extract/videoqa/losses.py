"""Losses and decisions of the three MASN answer heads (Seo et al., ACL 2021, section 3.4).

- Count: linear regression trained with MSE; the answer is the rounded output clamped to 1..10.
- Multiple choice (TGIF Action/Transition, NExT-QA): one score per candidate and the hinge loss
  ``max(0, 1 + s_n - s_p)`` over every (right, wrong) pair (Jang et al., CVPR 2017).
- Open-ended (TGIF FrameQA, MSVD-QA, MSRVTT-QA): softmax classifier trained with cross-entropy.
  Questions whose answer has no class (``NO_CLASS``) are left out of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from extract.videoqa.data import Head
from extract.videoqa.vocab import NO_CLASS

__all__ = ["COUNT_RANGE", "multiple_choice_hinge_loss", "head_loss", "decide", "head_output", "check_head"]

COUNT_RANGE = (1, 10)  # TGIF-QA Count answers are clamped to this range (public MASN code)


def multiple_choice_hinge_loss(scores: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """Mean of ``max(0, margin + s_wrong - s_right)`` over every question and every wrong candidate.

    scores ``[B, C]``, target ``[B]`` (long, index of the right candidate) -> scalar.
    """
    if scores.ndim != 2 or target.shape != scores.shape[:1]:
        raise ValueError(f"expected scores [B, C] and target [B], got {tuple(scores.shape)} and {tuple(target.shape)}")
    right = scores.gather(1, target[:, None])  # [B, 1]
    wrong = torch.ones_like(scores, dtype=torch.bool).scatter(1, target[:, None], False)  # [B, C]
    pairs = F.relu(margin + scores - right)  # [B, C]
    return pairs[wrong].mean()


def head_loss(head: Head, output: Tensor, targets: Tensor) -> Tensor:
    """Training loss of a head's ``output`` (see ``MASN.forward``) against batch ``targets`` ``[B]``."""
    if head == "count":
        return F.mse_loss(output, targets)
    if head == "choice":
        return multiple_choice_hinge_loss(output, targets.long())
    classes = targets.long()
    known = classes != NO_CLASS  # [B]
    if not known.any():  # the whole batch has out-of-vocabulary answers: nothing to learn from
        return output.sum() * 0.0
    return F.cross_entropy(output[known], classes[known])


def decide(head: Head, output: Tensor) -> Tensor:
    """Predicted answer ``[B]`` (long): count, candidate index, or answer class."""
    if head == "count":
        return output.round().clamp(*COUNT_RANGE).long()
    return output.argmax(dim=-1)


def head_output(head: Head, out: Tensor, batch: int, candidates: int) -> Tensor:
    """A model's last layer ``out`` (``[B*C, A or 1]``) as its head returns it: ``[B]`` count,
    ``[B, C]`` choice (one score per candidate), ``[B, A]`` open (class logits)."""
    if head == "open":
        return out
    if head == "choice":
        return out.view(batch, candidates)
    return out.view(batch)


def check_head(head: str, num_answers: int) -> None:
    """ValueError unless ``head`` is a known head and an open-ended one has answers to choose from."""
    if head not in ("count", "choice", "open"):
        raise ValueError(f"head must be 'count', 'choice' or 'open', got {head!r}")
    if head == "open" and num_answers < 1:
        raise ValueError(f"an open-ended head needs num_answers >= 1, got {num_answers}")
