"""What a model reads, by its registered source: the reader of the feature directory, and the dataset
and loader of its examples (``registry.ModelSpec.source``).

- ``masn``: the four MASN index files (``data.FeatureReader``, ``data.MasnDataset``, ``data.collate``);
- ``nextqa``: the ``extract export nextqa`` directory (``sources.nextqa``), with trajectories when the
  directory has them and NExT-QA's BERT-FT text features when a directory of them is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from extract.masn_index import index_paths
from extract.videoqa.data import Example, FeatureReader, MasnDataset, collate, make_loader
from extract.videoqa.sources.nextqa import BertFeatures, NextqaDataset, NextqaFeatureReader, collate_nextqa
from extract.videoqa.vocab import WordVocab

__all__ = ["open_reader", "open_bert", "make_source_loader"]


def open_reader(source: str, feat_dir: Path, dataset: str) -> FeatureReader | NextqaFeatureReader:
    """The feature reader of ``source`` over ``feat_dir``."""
    if source == "nextqa":
        return NextqaFeatureReader(feat_dir)
    return FeatureReader(index_paths(feat_dir, dataset))


def open_bert(source: str, bert_dir: Path | None, splits: Sequence[str]) -> BertFeatures | None:
    """BERT-FT features for ``splits`` when ``bert_dir`` is given; only NExT-QA-source models read them."""
    if bert_dir is None:
        return None
    if source != "nextqa":
        raise ValueError("BERT-FT text features are read by models of the nextqa source (hga, trajectory_hg), "
                         "not by MASN")
    return BertFeatures(bert_dir, splits)


def make_source_loader(source: str, examples: Sequence[Example], reader, *, words: WordVocab, max_steps: int,
                       sample: Callable[[int, int], np.ndarray], bert: BertFeatures | None, batch_size: int,
                       shuffle: bool, num_workers: int, seed: int, persistent: bool = True) -> DataLoader:
    """A DataLoader of ``examples`` as the models of ``source`` read them."""
    if source == "nextqa":
        dataset = NextqaDataset(examples, reader, words=words, max_steps=max_steps, sample=sample, bert=bert)
        return make_loader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, seed=seed,
                           collate_fn=collate_nextqa, persistent=persistent)
    return make_loader(MasnDataset(examples, reader, max_steps=max_steps, sample=sample), batch_size=batch_size,
                       shuffle=shuffle, num_workers=num_workers, seed=seed, collate_fn=collate, persistent=persistent)
