"""VideoQA models trained on extracted features: data sources, text, heads and losses, metrics,
the training loop, evaluation, and a model registry (``registry.list_models()``).

The extraction code imports nothing from here; this package reads what extraction writes (the MASN
index files of ``OUT/masn``, ``extract.masn_index``; NExT-QA's layout from ``extract export nextqa``).

Entry points, by module (``import extract.videoqa`` imports nothing heavy):
    registry.list_models(), registry.get_model_spec(name)
    train.train(TrainConfig, splits=None) -> Path
    evaluate.evaluate(checkpoint, questions, feat_dir=, out=), evaluate.evaluate_checkpoint(...)
    metrics.evaluate_nextqa(predictions, annotations), metrics.evaluate_predictions(...),
    metrics.format_table(metrics)
"""
