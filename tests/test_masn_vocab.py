"""Answer classes come from training answers only; an unknown answer has no class and cannot be right."""

from __future__ import annotations

from extract.videoqa.metrics import summarize
from extract.videoqa.vocab import NO_CLASS, AnswerVocab, WordVocab, tokenize


def test_answer_vocabulary_is_the_top_k_training_answers():
    train = ["dog"] * 3 + ["cat"] * 5 + ["man"] * 2 + ["ball"]
    answers = AnswerVocab.build(train, top_k=2)
    assert answers.answers == ("cat", "dog")
    assert answers.index("CAT ") == 0
    # a frequent test answer outside the top-k of training answers gets no class, not class 1
    assert answers.index("man") == NO_CLASS
    assert answers.index("zebra") == NO_CLASS
    assert AnswerVocab.build(train, top_k=None).answers == ("cat", "dog", "man", "ball")


def test_unknown_answers_count_as_wrong():
    # the prediction is always one of the known classes, so a question whose answer is unknown is wrong
    records = [
        {"task": "what", "prediction": "cat", "answer": "cat"},
        {"task": "what", "prediction": "cat", "answer": "zebra"},
        {"task": "who", "prediction": "man", "answer": "woman"},
        {"task": "who", "prediction": "man", "answer": "man"},
    ]
    metrics = summarize(records, "msvd")
    assert metrics["what"] == 50.0 and metrics["who"] == 50.0 and metrics["All"] == 50.0
    assert metrics["how"] is None


def test_word_vocabulary():
    assert tokenize("What's the man doing?") == ["what", "'s", "the", "man", "doing"]
    words = WordVocab.build(["a cat", "the cat"])
    assert words.words[:2] == ("<pad>", "<unk>")
    assert words.encode("the dog") == [4, 1]
