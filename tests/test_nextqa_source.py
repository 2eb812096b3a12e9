"""The nextqa feature source: the files `extract export nextqa` writes, read with the agreed layout
(written here with plain h5py), trajectories padded and masked per batch, and BERT-FT rows found by
each question's original csv row."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from extract.datasets import load_dataset
from extract.videoqa.data import build_examples
from extract.videoqa.sources.nextqa import BertFeatures, NextqaDataset, NextqaFeatureReader, collate_nextqa
from extract.videoqa.vocab import WordVocab
from nextqa_export import CLIP_DIM, TRAJ_DIM, write_annotations, write_bert, write_export


def test_reader_merges_split_files_and_reads_trajectories(tmp_path):
    written = write_export(tmp_path, "train", {"v0": 0, "v1": 1, "v2": 4}, seed=1)
    written |= write_export(tmp_path, "val", {"v3": 2}, seed=2)
    reader = NextqaFeatureReader(tmp_path)
    assert reader.has("v0") and reader.has("v3") and not reader.has("missing")
    assert reader.has_trajectories and reader.length("v2") == 16
    assert reader.dims("v1") == (CLIP_DIM, CLIP_DIM, TRAJ_DIM)
    clips = reader.read("v3", np.arange(16))
    np.testing.assert_array_equal(clips["app_global"], written["v3"]["feat"][:, :CLIP_DIM])
    np.testing.assert_array_equal(clips["mot_global"], written["v3"]["feat"][:, CLIP_DIM:])
    for key, count in (("v0", 0), ("v1", 1), ("v2", 4)):
        traj = reader.trajectories(key)
        assert traj["feat"].shape == (count, TRAJ_DIM) and traj["span"].shape == (count, 2)
        np.testing.assert_array_equal(traj["feat"], written[key]["traj"])
        assert traj["names"] == written[key]["names"] and "" not in traj["names"]


def test_all_file_serves_every_split_and_no_trajectory_files(tmp_path):
    write_export(tmp_path, "all", {"a": 0, "b": 0}, with_trajectories=False)
    reader = NextqaFeatureReader(tmp_path)
    assert reader.has("a") and not reader.has_trajectories and reader.trajectories("a") is None
    assert reader.dims("a").objects == 0


def test_file_without_any_trajectory_has_one_masked_slot(tmp_path):
    write_export(tmp_path, "all", {"a": 0, "b": 0})
    with h5py.File(tmp_path / "traj_feat" / "traj_all.h5") as h5:
        assert h5["mask"].shape == (2, 1) and not h5["mask"][()].any()
    assert NextqaFeatureReader(tmp_path).trajectories("b")["feat"].shape == (0, TRAJ_DIM)


def test_a_key_in_two_files_and_a_missing_directory_are_errors(tmp_path):
    write_export(tmp_path, "train", {"a": 1})
    write_export(tmp_path, "val", {"a": 1})
    with pytest.raises(ValueError, match="'a' is in both .*app_mot_train.h5 and .*app_mot_val.h5"):
        NextqaFeatureReader(tmp_path)
    with pytest.raises(FileNotFoundError, match="app_mot_<split>.h5"):
        NextqaFeatureReader(tmp_path / "nothing")


def _batch(tmp_path, trajectories: dict[str, int], bert: bool = False):
    write_export(tmp_path / "feat", "train", trajectories)
    write_annotations(tmp_path / "ann", {"train": dict.fromkeys(trajectories, 1)})
    questions = load_dataset("nextqa", tmp_path / "ann").questions("train")
    reader = NextqaFeatureReader(tmp_path / "feat")
    words = WordVocab.build([*(t for q in questions for t in (q.question, *q.candidates)), "adult", "child", "dog"])
    examples = build_examples(questions, head="choice", words=words, answers=None, max_tokens=20, text_rows=bert)
    features = BertFeatures(tmp_path / "bert", ["train"]) if bert else None
    dataset = NextqaDataset(examples, reader, words=words, max_steps=16, bert=features)
    return collate_nextqa([dataset[i] for i in range(len(dataset))]), words, reader


@pytest.mark.parametrize("counts", [[0, 0], [1, 0], [0, 1, 5]])
def test_batches_pad_trajectories_to_the_most_and_mask_the_rest(tmp_path, counts):
    keys = {f"v{i}": n for i, n in enumerate(counts)}
    batch, words, reader = _batch(tmp_path, keys)
    N = max(1, max(counts))
    assert batch.traj_feat.shape == (len(counts), N, TRAJ_DIM) and batch.traj_span.shape == (len(counts), N, 2)
    assert batch.traj_mask.sum(dim=1).tolist() == counts
    assert batch.app_objects is None and batch.app_global.shape == (len(counts), 16, CLIP_DIM)
    for b, key in enumerate(keys):
        names = reader.trajectories(key)["names"]
        for j, name in enumerate(names):
            row = batch.traj_label_tokens[b, j, : batch.traj_label_lengths[b, j]].tolist()
            assert row == words.encode(name.replace("_", " "))
    assert not batch.traj_feat[~batch.traj_mask].any() and not batch.traj_label_lengths[~batch.traj_mask].any()


def test_bert_rows_follow_the_original_csv_row_when_questions_are_filtered(tmp_path):
    write_annotations(tmp_path / "ann", {"train": {"a": 2, "b": 3}})
    questions = load_dataset("nextqa", tmp_path / "ann").questions("train")
    assert [q.row for q in questions] == [0, 1, 2, 3, 4]
    feat = write_bert(tmp_path / "bert", "train", 5)
    write_export(tmp_path / "feat", "train", {"b": 1})  # video a has no features: its questions go
    kept = [q for q in questions if q.key == "b"]
    words = WordVocab.build(t for q in kept for t in (q.question, *q.candidates))
    examples = build_examples(kept, head="choice", words=words, answers=None, max_tokens=20, text_rows=True)
    dataset = NextqaDataset(examples, NextqaFeatureReader(tmp_path / "feat"), words=words, max_steps=16,
                            bert=BertFeatures(tmp_path / "bert", ["train"]))
    batch = collate_nextqa([dataset[i] for i in range(len(dataset))])
    for b, q in enumerate(kept):
        lengths = batch.lengths[b]
        for c in range(5):
            real = feat[q.row, c][np.any(feat[q.row, c] != 0, axis=-1)]
            assert lengths[c] == len(real)
            np.testing.assert_array_equal(batch.text_feat[b, c, : lengths[c]].numpy(), real)
        assert not batch.text_feat[b][torch.arange(batch.text_feat.shape[2])[None, :] >= lengths[:, None]].any()


def test_bert_rows_beyond_the_file_are_refused(tmp_path):
    write_bert(tmp_path, "val", 2)
    with pytest.raises(ValueError, match="bert_ft_val.h5: has 2 questions, but csv row 7"):
        BertFeatures(tmp_path, ["val"]).check_rows("val", [0, 7])
    with pytest.raises(FileNotFoundError, match="bert_ft_test.h5"):
        BertFeatures(tmp_path, ["test"])
