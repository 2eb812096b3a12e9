"""GloVe reader: streams a text file, keeps only vocabulary words, caches the matrix; no GloVe and no
explicit random embeddings stops the run with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

import extract.videoqa.glove as glove_module
from extract.videoqa.glove import load_glove
from extract.videoqa.train import TrainConfig, train

GLOVE = """\
the 0.1 0.2 0.3 0.4
zebra 9 9
cat 1.0 -1.0 0.5 0.25
new york 2 2 2 2
dog -0.5 0.5 -0.5 0.5
the 7 7 7 7
"""


def test_keeps_only_vocabulary_words_and_reuses_its_cache(tmp_path, monkeypatch):
    path = tmp_path / "glove.test.4d.txt"
    path.write_text(GLOVE)
    words = ("<pad>", "<unk>", "the", "cat", "new york", "unicorn")
    vectors = load_glove(path, words, cache_dir=tmp_path / "cache")

    m = vectors.matrix
    assert m.shape == (6, 4) and m.dtype == np.float32
    assert np.array_equal(m[0], np.zeros(4))  # padding
    assert np.allclose(m[2], [0.1, 0.2, 0.3, 0.4])  # the first "the" line wins
    assert np.allclose(m[3], [1.0, -1.0, 0.5, 0.25])
    assert np.allclose(m[4], [2, 2, 2, 2])  # a GloVe word with a space in it
    assert np.abs(m[5]).sum() > 0  # "unicorn" is not in GloVe: a random vector, not zeros
    # "zebra" has a malformed line; it is not in the vocabulary, so it was never parsed
    assert vectors.found == 3 and vectors.source == f"glove:{path}"

    caches = list((tmp_path / "cache").glob("glove-*.npy"))
    assert caches, "the matrix is cached as .npy"

    def no_reading(*args, **kwargs):
        raise AssertionError("the GloVe file was read again instead of the cache")

    monkeypatch.setattr(glove_module, "open", no_reading, raising=False)
    again = load_glove(path, words, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.matrix, m) and again.found == 3
    monkeypatch.undo()

    # another vocabulary is another cache entry
    other = load_glove(path, ("<pad>", "<unk>", "dog"), cache_dir=tmp_path / "cache")
    assert np.allclose(other.matrix[2], [-0.5, 0.5, -0.5, 0.5])
    assert len(list((tmp_path / "cache").glob("glove-*.npy"))) > len(caches)


def test_a_malformed_vocabulary_line_is_an_error(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    with pytest.raises(ValueError, match="expected 4 values"):
        load_glove(path, ("<pad>", "<unk>", "zebra"), cache_dir=tmp_path)


def test_training_without_word_vectors_stops_with_a_clear_message(tmp_path):
    config = TrainConfig(dataset="tgif", task="count", feat_dir=tmp_path / "nowhere", out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="--glove PATH.*--random-embeddings"):
        train(config, {"train": []})
    missing = config.model_copy(update={"glove": tmp_path / "glove.840B.300d.txt"})
    with pytest.raises(FileNotFoundError, match="glove.840B.300d.txt"):
        train(missing, {"train": []})
    assert not (tmp_path / "out").exists()
