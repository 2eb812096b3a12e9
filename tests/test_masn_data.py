"""MASN data preparation: uniform sampling of long videos, the held-out validation split, question encoding."""

from __future__ import annotations

import numpy as np
import pytest

from extract.datasets.base import Question
from extract.videoqa.data import build_examples, carve_validation, uniform_sample
from extract.masn_index import MASN_INDEX_FILES, index_paths
from extract.videoqa.vocab import NO_CLASS, AnswerVocab, WordVocab


def test_uniform_sampling_spans_the_whole_video():
    # 100 steps into 20: the centre of each 5-step segment, 2, 7, ..., 97 -- not the first 20 steps
    steps = uniform_sample(100, 20)
    assert steps.tolist() == list(range(2, 100, 5))
    assert steps.dtype == np.int64
    # 21 into 20: all distinct and increasing, still reaching the end
    steps = uniform_sample(21, 20)
    assert len(set(steps.tolist())) == 20 and np.all(np.diff(steps) > 0) and steps[-1] == 20
    # short videos keep every step (padding is the batch's business)
    assert uniform_sample(7, 20).tolist() == list(range(7))
    assert uniform_sample(20, 20).tolist() == list(range(20))
    with pytest.raises(ValueError, match="max_steps"):
        uniform_sample(5, 0)


def _q(key: str, qid: str, answer: str = "x", task: str = "frameqa", question: str = "what is it", candidates=()):
    return Question(key=key, qid=qid, question=question, answer=answer, task=task, split="train", candidates=candidates)


def test_validation_is_carved_by_video_and_deterministically():
    train = [_q(str(v), f"{v}-{i}") for v in range(200) for i in range(3)]
    kept, held = carve_validation(train, 0.1)
    assert carve_validation(list(reversed(train)), 0.1)[1] == list(reversed(held))  # order-independent choice
    assert {q.key for q in kept}.isdisjoint({q.key for q in held})  # a video is never in both
    assert len(kept) + len(held) == len(train)
    assert 8 <= len({q.key for q in held}) <= 35  # about 10% of 200 videos
    # a tiny training set still gets one validation video
    kept, held = carve_validation([_q("a", "1"), _q("b", "2")], 0.1)
    assert len(held) == 1 and len(kept) == 1


def test_choice_rows_keep_the_candidate_and_open_answers_without_class():
    words = WordVocab.build(["what does the man do after he opens the door", "walk away"])
    question = _q("v", "1", answer="1", task="transition", question="what does the man do after he opens the door",
                  candidates=("sit", "walk away"))
    (example,) = build_examples([question], head="choice", words=words, answers=None, max_tokens=6)
    # 10 question words + 2 candidate words into 6 tokens: the question is cut, the candidate kept whole
    assert example.tokens[1] == tuple(words.encode("what does the man walk away"))
    assert example.tokens[0][-1] == 1  # "sit" was never a training word: UNK
    assert example.target == 1.0

    answers = AnswerVocab.build(["cat", "dog", "cat"], top_k=None)
    open_examples = build_examples([_q("v", "1", answer="Cat"), _q("v", "2", answer="zebra")], head="open",
                                   words=words, answers=answers, max_tokens=20)
    assert [e.target for e in open_examples] == [0.0, float(NO_CLASS)]


def test_index_file_names_are_the_original_masn_names():
    assert MASN_INDEX_FILES["tgif"].appearance_objects == "feat_r6_vsync2/tgif_btup_f_obj10.hdf5"
    assert MASN_INDEX_FILES["nextqa"] == MASN_INDEX_FILES["tgif"]
    assert MASN_INDEX_FILES["msrvtt"].motion_objects == "vfeat/msrvtt_i3d_roialign_perclip_obj10.hdf5"
    assert str(index_paths("/feat", "msvd").motion_global) == "/feat/vfeat/msvd_i3d_avgpool_perclip.hdf5"
    with pytest.raises(ValueError, match="unknown dataset"):
        index_paths("/feat", "kinetics")
