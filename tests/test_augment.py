"""Sample augmentation (a-, qa-): M negatives per strategy appended to each training question, never
a positive, qa- from other videos only, fresh every epoch."""

from __future__ import annotations

import numpy as np
import pytest

from extract.datasets.base import Question
from extract.videoqa.augment import Augmenter, AugmentConfig, parse_augment
from extract.videoqa.data import build_examples
from extract.videoqa.vocab import WordVocab, normalize_answer


def questions() -> list[Question]:
    """Three videos; several questions share answers across videos (those must never be drawn as a-)."""
    out = []
    answers = ["a dog", "the ball", "a dog", "red hat", "the ball", "a dog", "blue car", "Red hat "]
    for i, answer in enumerate(answers):
        key = f"v{i % 3}"
        right = i % 5
        candidates = [f"wrong {i} {c}" for c in range(5)]
        candidates[right] = answer
        out.append(Question(key=key, qid=f"{key}_{i}", question=f"what is seen {i % 4}", answer=str(right),
                            task="DO", split="train", candidates=tuple(candidates), row=i))
    # a question repeated word for word on another video with the same answer: its pair is a positive
    out.append(Question(key="v2", qid="v2_99", question="what is seen 0", answer="0", task="DO", split="train",
                        candidates=("a dog", "x", "y", "z", "w"), row=8))
    return out


def make(strategies, negatives=5, seed=0, text_rows=False):
    qs = questions()
    words = WordVocab.build(t for q in qs for t in (q.question, *q.candidates))
    examples = build_examples(qs, head="choice", words=words, answers=None, max_tokens=20, text_rows=text_rows)
    config = AugmentConfig(strategies=strategies, negatives=negatives)
    return Augmenter(config, qs, examples, words=words, max_tokens=20, seed=seed, text_rows=text_rows), qs, examples


def right(q: Question) -> str:
    return normalize_answer(q.candidates[int(q.answer)])


@pytest.mark.parametrize("seed", range(5))
def test_negatives_are_never_positives_and_come_from_other_videos(seed):
    augmenter, qs, _ = make(("a-", "qa-"), negatives=7, seed=seed)
    rng = np.random.default_rng(seed)
    for i, q in enumerate(qs):
        drawn = augmenter.draw(i, rng)
        assert [n.strategy for n in drawn] == ["a-"] * 7 + ["qa-"] * 7
        for negative in drawn:
            source = qs[negative.source]
            assert source.key != q.key
            if negative.strategy == "a-":
                assert right(source) != right(q)
            else:
                assert (normalize_answer(source.question), right(source)) != (normalize_answer(q.question), right(q))


def test_examples_gain_the_negatives_as_candidates_and_keep_their_target():
    augmenter, qs, examples = make(("a-", "qa-"))
    words = WordVocab.build(t for q in qs for t in (q.question, *q.candidates))
    augmented = augmenter.examples_for_epoch(1)
    for q, before, after in zip(qs, examples, augmented):
        assert len(after.tokens) == 15 and after.tokens[:5] == before.tokens and after.target == before.target
        positive = after.tokens[int(after.target)]
        assert positive not in after.tokens[5:]
        assert all(row[: len(words.encode(q.question))] == tuple(words.encode(q.question)) for row in after.tokens[5:10])
    assert augmenter.examples_for_epoch(1) == augmented  # seeded by (seed, epoch)
    assert augmenter.examples_for_epoch(2) != augmented  # fresh negatives every epoch


def test_qa_with_bert_rows_points_at_the_other_questions_right_answer():
    augmenter, qs, _ = make(("qa-",), text_rows=True)
    for q, example in zip(qs, augmenter.examples_for_epoch(0)):
        assert len(example.text_rows) == 10
        for row in example.text_rows[5:]:
            source = next(s for s in qs if s.row == row.row)
            assert source.key != q.key and row.candidate == int(source.answer)
    with pytest.raises(ValueError, match="a- needs word tokens"):
        make(("a-",), text_rows=True)


def test_parse_and_a_single_video():
    assert parse_augment("a-,qa-").strategies == ("a-", "qa-")
    assert parse_augment("qa-", 3).negatives == 3
    with pytest.raises(ValueError, match="unknown augmentation b-"):
        parse_augment("a-,b-")
    qs = [q for q in questions() if q.key == "v0"]
    words = WordVocab.build(t for q in qs for t in (q.question, *q.candidates))
    examples = build_examples(qs, head="choice", words=words, answers=None, max_tokens=20)
    with pytest.raises(ValueError, match="single video"):
        Augmenter(AugmentConfig(strategies=("a-",)), qs, examples, words=words, max_tokens=20, seed=0)


def test_masn_trains_with_augmentation_on_a_tgif_choice_task(tmp_path):
    """Augmentation is a trainer option for any multiple-choice model, MASN on the MASN layout included."""
    import json

    from extract.videoqa.train import train
    from test_masn_train import action, config, write_features

    videos = [f"tr{i}" for i in range(4)]
    write_features(tmp_path / "feat", "tgif", {key: 3 for key in [*videos, "va0"]})
    splits = {"train": [action(key, f"q{i}", i % 5, "train") for i, key in enumerate(videos)],
              "val": [action("va0", "qv", 1, "val")]}
    train(config(tmp_path, task="action", augment={"strategies": ["a-", "qa-"], "negatives": 2}), splits)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["augment"] == {"strategies": ["a-", "qa-"], "negatives": 2} and run["selected_epoch"] == 1
