"""Sample augmentation for multiple-choice training (Wang et al., "Rethinking Multi-Modal Alignment in
Video Question Answering from Feature and Sample Perspectives", section 3.4 and Table 6).

Two strategies add extra *negative* candidates to a training question; the hinge loss then runs over
the 4 original wrong candidates and every added one (``losses.multiple_choice_hinge_loss``):

- ``a-``:  M right answers of questions about *other* videos, each appended to this question
  (question + foreign answer);
- ``qa-``: M whole question-answer pairs (a question and its right answer) of other videos, as
  candidates of this video.

A drawn negative is never a positive: an ``a-`` answer equal (normalised) to this question's right
answer, or a ``qa-`` pair equal to this question with its right answer, is redrawn. Negatives are drawn
afresh every epoch (``Augmenter.examples(epoch)``); validation and test keep their 5 candidates.
With fewer eligible negatives than M (tiny datasets), they are drawn with replacement so that every
question has the same number of candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from extract.datasets.base import Question
from extract.videoqa.data import Example, TextRow, _choice_tokens
from extract.videoqa.vocab import WordVocab, normalize_answer

__all__ = ["AugmentConfig", "Negative", "Augmenter", "parse_augment"]

Strategy = Literal["a-", "qa-"]


class AugmentConfig(BaseModel):
    """Which strategies, and how many negatives each adds (paper: both, M = 5, section 4.2)."""

    model_config = ConfigDict(extra="forbid")

    strategies: tuple[Strategy, ...] = ()  # empty: no augmentation
    negatives: int = Field(5, ge=1)  # M, negatives added per strategy and question (paper: 5)


def parse_augment(text: str, negatives: int = 5) -> AugmentConfig:
    """``"a-,qa-"`` -> AugmentConfig; ValueError naming a strategy that is neither."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in ("a-", "qa-")]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; expected a-, qa- or a-,qa-")
    return AugmentConfig(strategies=names, negatives=negatives)


@dataclass(frozen=True)
class Negative:
    """One added candidate: its strategy and the training question it was drawn from."""

    strategy: Strategy
    source: int  # index, in the training questions, of the question whose answer (or pair) it is


class Augmenter:
    """Draws negatives for the training questions and returns examples with them appended."""

    def __init__(self, config: AugmentConfig, questions: Sequence[Question], examples: Sequence[Example], *,
                 words: WordVocab, max_tokens: int, seed: int, text_rows: bool = False):
        if "a-" in config.strategies and text_rows:
            raise ValueError("augmentation a- needs word tokens: BERT-FT features encode each question with its "
                             "answer, so a foreign answer cannot be attached (the paper uses qa- only with BERT-FT)")
        keys = {q.key for q in questions}
        if len(keys) < 2:
            raise ValueError("sample augmentation draws from other videos: the training split has a single video")
        self.config = config
        self.questions = list(questions)
        self.examples = list(examples)
        self.max_tokens = max_tokens
        self.seed = seed
        self.text_rows = text_rows
        self._keys = np.array([q.key for q in self.questions])
        self._answers = [normalize_answer(_right(q)) for q in self.questions]
        self._pairs = [(normalize_answer(q.question), a) for q, a in zip(self.questions, self._answers)]
        self._question_tokens = [words.encode(q.question) for q in self.questions]
        self._answer_tokens = [words.encode(_right(q)) for q in self.questions]

    def _eligible(self, i: int, strategy: Strategy, j: int) -> bool:
        if self._keys[j] == self._keys[i]:
            return False
        if strategy == "a-":
            return self._answers[j] != self._answers[i]
        return self._pairs[j] != self._pairs[i]

    def draw(self, i: int, rng: np.random.Generator) -> list[Negative]:
        """The negatives of training question ``i``: M per strategy, in strategy order."""
        M, n = self.config.negatives, len(self.questions)
        drawn: list[Negative] = []
        for strategy in self.config.strategies:
            picked = [int(j) for j in rng.integers(n, size=4 * M) if self._eligible(i, strategy, int(j))][:M]
            if len(picked) < M:  # rare or tiny: choose among every eligible question
                pool = [j for j in range(n) if self._eligible(i, strategy, j)]
                if not pool:
                    raise ValueError(f"no {strategy} negative for question {self.questions[i].qid}: every other "
                                     "video's question shares its right answer")
                picked = [int(j) for j in rng.choice(pool, size=M, replace=len(pool) < M)]
            drawn.extend(Negative(strategy, j) for j in picked)
        return drawn

    def _row(self, i: int, negative: Negative) -> tuple[int, ...]:
        j = negative.source
        question = self._question_tokens[i if negative.strategy == "a-" else j]
        return _choice_tokens(question, self._answer_tokens[j], self.max_tokens) or (1,)

    def examples_for_epoch(self, epoch: int) -> list[Example]:
        """Every training example with its negatives appended (seeded by ``seed`` and ``epoch``)."""
        rng = np.random.default_rng((self.seed, epoch))
        out = []
        for i, example in enumerate(self.examples):
            negatives = self.draw(i, rng)
            tokens = example.tokens + tuple(self._row(i, neg) for neg in negatives)
            text_rows = example.text_rows
            if self.text_rows:
                text_rows = text_rows + tuple(_text_row(self.questions[neg.source]) for neg in negatives)
            out.append(replace(example, tokens=tokens, text_rows=text_rows))
        return out


def _right(q: Question) -> str:
    return q.candidates[int(q.answer)]


def _text_row(q: Question) -> TextRow:
    return TextRow(q.split, q.row, int(q.answer))
