"""Question words and answer classes for the MASN trainer (Seo et al., ACL 2021, sections 3.1 and 3.4).

Both vocabularies are built from the *training* split only. For open-ended questions the answer
classes are the most frequent training answers (MSVD-QA 1,000, MSRVTT-QA 4,000, as in the
benchmarks' definitions; every training answer for TGIF FrameQA). An answer outside that set has no
class: it is never mapped onto a real class (the public MASN code maps it to class 1), so a test
question with such an answer always counts as wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

__all__ = ["PAD", "UNK", "NO_CLASS", "WordVocab", "AnswerVocab", "tokenize", "normalize_answer"]

PAD = "<pad>"  # index 0: padding, a zero word vector
UNK = "<unk>"  # index 1: words not seen in training
NO_CLASS = -1  # answer index of an answer outside the answer vocabulary

_TOKEN = re.compile(r"[a-z0-9]+|'[a-z]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and clitics: ``"What's the man doing?"`` -> ``["what", "'s", "the", "man", "doing"]``."""
    return _TOKEN.findall(text.lower())


def normalize_answer(answer: str) -> str:
    """The form in which open-ended answers are compared (stripped, lower case)."""
    return answer.strip().lower()


@dataclass(frozen=True)
class WordVocab:
    """Question words, index order; ``words[0]`` is PAD and ``words[1]`` is UNK."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Iterable[str]) -> WordVocab:
        """Every word of ``sentences`` (training questions and candidate answers), by first appearance."""
        seen = dict.fromkeys(word for sentence in sentences for word in tokenize(sentence))
        seen.pop(PAD, None)
        seen.pop(UNK, None)
        return cls((PAD, UNK, *seen))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Word indices of ``text``; unknown words map to UNK."""
        return [self._index.get(word, 1) for word in tokenize(text)]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}


@dataclass(frozen=True)
class AnswerVocab:
    """Answer classes of an open-ended head, most frequent training answer first."""

    answers: tuple[str, ...]

    @classmethod
    def build(cls, training_answers: Iterable[str], top_k: int | None) -> AnswerVocab:
        """The ``top_k`` most frequent normalized training answers (all of them when ``top_k`` is None).

        Ties keep the order of first appearance, so the vocabulary is deterministic.
        """
        counts = Counter(normalize_answer(a) for a in training_answers)
        if not counts:
            raise ValueError("cannot build an answer vocabulary: the training split has no questions")
        return cls(tuple(answer for answer, _ in counts.most_common(top_k)))

    def __len__(self) -> int:
        return len(self.answers)

    def index(self, answer: str) -> int:
        """Class of ``answer``, or NO_CLASS when the training answers did not include it."""
        return self._index.get(normalize_answer(answer), NO_CLASS)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {answer: i for i, answer in enumerate(self.answers)}
