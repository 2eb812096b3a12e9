"""MASN model and losses: gradients reach the input projections, a batch of one works for every head,
padding is masked, and the multiple-choice hinge loss matches a hand computation."""

from __future__ import annotations

import pytest
import torch

from extract.videoqa.data import Batch
from extract.videoqa.losses import decide, head_loss, multiple_choice_hinge_loss
from extract.videoqa.models.masn import MASN, ModelConfig, masked_softmax
from extract.videoqa.vocab import NO_CLASS
import videoqa_helpers

D, N, H, VOCAB, WORD = 24, 3, 16, 30, 8  # feature width, objects, hidden size, words, word-vector width
TINY = ModelConfig(hidden_size=H, location_dim=8, dropout=0.1)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_batch(lengths: list[int], **options) -> Batch:
    """A random padded batch whose videos have the given numbers of steps."""
    return videoqa_helpers.make_batch(lengths, dim=D, objects=N, vocab=VOCAB, **options)


def make_model(head: str, num_answers: int = 0) -> MASN:
    torch.manual_seed(0)
    return MASN(TINY, vocab_size=VOCAB, word_dim=WORD, appearance_dim=D, motion_dim=D, head=head,
                num_answers=num_answers)


def test_input_projections_receive_gradients():
    # The public code's weight-dropped 2048-to-hidden projections re-create their weight each forward,
    # so the trained parameter never gets a gradient. Ours must, with DropConnect active.
    model = make_model("open", num_answers=4).train()
    batch = make_batch([4, 2])
    batch.targets = torch.tensor([1.0, 3.0])
    head_loss("open", model(batch), batch.targets).backward()
    projections = {
        "appearance objects": model.appearance.object_proj,
        "appearance global": model.appearance.global_proj,
        "motion objects": model.motion.object_proj,
        "motion global": model.motion.global_proj,
    }
    for name, layer in projections.items():
        assert layer.weight.shape == (H, D)
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0, name
    before = model.appearance.object_proj.weight.detach().clone()
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    assert not torch.equal(before, model.appearance.object_proj.weight)


@pytest.mark.parametrize(("head", "candidates", "num_answers", "shape"), [
    ("count", 1, 0, (1,)),
    ("choice", 5, 0, (1, 5)),
    ("open", 1, 7, (1, 7)),
])
def test_batch_of_one_question(head, candidates, num_answers, shape):
    # The public code squeezes its outputs, which drops the batch dimension of a final batch of one.
    model = make_model(head, num_answers).train()
    batch = make_batch([3], candidates=candidates)
    batch.targets = torch.tensor([2.0])
    output = model(batch)
    assert output.shape == shape
    loss = head_loss(head, output, batch.targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert decide(head, output.detach()).shape == (1,)


def test_padding_does_not_change_a_question_output():
    # The same video and question give the same scores alone or next to a longer video and question.
    model = make_model("choice").eval()
    alone = make_batch([3], candidates=2, tokens=4, seed=1)
    other = make_batch([6], candidates=2, tokens=7, seed=2)
    together = Batch(**{
        name: torch.cat([
            torch.nn.functional.pad(getattr(alone, name), _pad_spec(getattr(alone, name), getattr(other, name))),
            getattr(other, name),
        ])
        for name in alone.__dataclass_fields__
        if getattr(alone, name) is not None  # the NExT-QA export's fields stay None
    })
    with torch.no_grad():
        torch.testing.assert_close(model(alone)[0], model(together)[0], rtol=1e-5, atol=1e-5)


def _pad_spec(small: torch.Tensor, large: torch.Tensor) -> list[int]:
    """F.pad widths that grow ``small`` to ``large`` in every dimension but the first."""
    spec: list[int] = []
    for s, l in zip(reversed(small.shape[1:]), reversed(large.shape[1:])):
        spec += [0, l - s]
    return spec


def test_multiple_choice_hinge_loss_by_hand():
    scores = torch.tensor([[2.0, 1.5, -1.0],
                           [0.0, 0.5, 3.0]])
    target = torch.tensor([0, 1])
    # question 0, right score 2.0: wrong 1.5 -> max(0, 1 + 1.5 - 2.0) = 0.5; wrong -1.0 -> max(0, 1 - 1 - 2) = 0
    # question 1, right score 0.5: wrong 0.0 -> 1 + 0.0 - 0.5 = 0.5;       wrong 3.0 -> 1 + 3.0 - 0.5 = 3.5
    # mean over the 4 (right, wrong) pairs: (0.5 + 0 + 0.5 + 3.5) / 4 = 1.125
    assert multiple_choice_hinge_loss(scores, target).item() == pytest.approx(1.125)
    assert head_loss("choice", scores, target.float()).item() == pytest.approx(1.125)
    # the margin is 1: a right answer ahead of every wrong one by at least 1 costs nothing
    assert multiple_choice_hinge_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([0])).item() == 0.0


def test_count_decision_and_unknown_answers():
    assert decide("count", torch.tensor([-3.2, 0.4, 2.5, 2.51, 37.0])).tolist() == [1, 1, 2, 3, 10]
    logits = torch.tensor([[0.0, 5.0], [5.0, 0.0]], requires_grad=True)
    # an answer without a class (NO_CLASS) is left out of the loss instead of being trained as class 1
    loss = head_loss("open", logits, torch.tensor([1.0, float(NO_CLASS)]))
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[:1], torch.tensor([1])).item())
    assert head_loss("open", logits, torch.tensor([float(NO_CLASS)] * 2)).item() == 0.0


def test_masked_softmax_of_nothing_is_zero():
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = masked_softmax(scores, mask, dim=-1)
    assert out[0, 1] == 0 and out[0].sum().item() == pytest.approx(1.0)
    assert torch.equal(out[1], torch.zeros(3))


@pytest.mark.parametrize(("head", "candidates", "num_answers"), [("count", 1, 0), ("choice", 5, 0), ("open", 1, 7)])
def test_question_only_baseline_ignores_the_video(head, candidates, num_answers):
    # The baseline builds no visual stream: other features, another length, other boxes -> the same output.
    torch.manual_seed(0)
    config = TINY.model_copy(update={"question_only": True})
    model = MASN(config, vocab_size=VOCAB, word_dim=WORD, appearance_dim=D, motion_dim=D, head=head,
                 num_answers=num_answers).eval()
    assert model.appearance is None and model.motion is None
    first = make_batch([4, 2], candidates=candidates, seed=3)
    second = make_batch([6, 5], candidates=candidates, seed=4)
    second.tokens, second.lengths = first.tokens, first.lengths  # same questions, other videos
    for name in ("app_global", "mot_global", "app_objects", "mot_objects"):
        getattr(second, name).mul_(100.0)
    with torch.no_grad():
        torch.testing.assert_close(model(first), model(second), rtol=0, atol=0)

    # and no gradient path from the features: they are never read
    model.train()
    for name in ("app_global", "mot_global", "app_objects", "mot_objects", "boxes"):
        getattr(first, name).requires_grad_(True)
    first.targets = torch.ones(2)
    head_loss(head, model(first), first.targets).backward()
    assert all(getattr(first, name).grad is None
               for name in ("app_global", "mot_global", "app_objects", "mot_objects", "boxes"))
    assert model.video_constant.grad is not None and model.video_constant.grad.abs().sum() > 0

    # the full model does depend on the video (the same check fails without question_only)
    full = make_model(head, num_answers).eval()
    with torch.no_grad():
        assert not torch.allclose(full(first), full(second))


def test_standardized_features_are_z_scores_of_the_inputs():
    # standardize_features only rescales the inputs: the same weights on pre-standardized features agree
    torch.manual_seed(0)
    config = TINY.model_copy(update={"standardize_features": True})
    model = MASN(config, vocab_size=VOCAB, word_dim=WORD, appearance_dim=D, motion_dim=D, head="open",
                 num_answers=4).eval()
    g = torch.Generator().manual_seed(5)
    stats = {name: (torch.randn(D, generator=g) * 3, torch.rand(D, generator=g) + 0.5)
             for name in ("app_objects", "app_global", "mot_objects", "mot_global")}
    model.set_feature_statistics(stats)
    plain = MASN(TINY, vocab_size=VOCAB, word_dim=WORD, appearance_dim=D, motion_dim=D, head="open", num_answers=4)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == sorted(
        f"{stream}.{name}" for stream in ("appearance", "motion")
        for name in ("object_mean", "object_std", "global_mean", "global_std"))
    batch = make_batch([4, 2], seed=6)
    standardized = Batch(**{name: getattr(batch, name) for name in batch.__dataclass_fields__})
    for name, (mean, std) in stats.items():
        setattr(standardized, name, (getattr(batch, name) - mean) / std)
    with torch.no_grad():
        torch.testing.assert_close(model(batch), plain.eval()(standardized), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="standardize_features=False"):
        plain.set_feature_statistics(stats)
