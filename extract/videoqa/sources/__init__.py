"""Feature sources of the VideoQA trainer other than the MASN index files (``extract.videoqa.data``):
``nextqa``, the files ``extract export nextqa`` writes (frame features, trajectories) and NExT-QA's
released BERT-FT text features."""
