"""The bundled MASN trainer and VideoQA evaluation.

MASN: "Attend What You Need: Motion-Appearance Synergistic Networks for Video Question Answering",
Seo, Kang, Park and Zhang, ACL 2021. The trainer reads features in the original MASN layout
(``layout.MASN_INDEX_FILES``), so it runs on what ``extract run`` writes to ``OUT/masn``.

Entry points, by module (``import extract.masn`` imports nothing heavy):
    train.train(TrainConfig, splits=None) -> Path
    evaluate.evaluate(checkpoint, questions, feat_dir=, out=), evaluate.evaluate_checkpoint(...)
    metrics.evaluate_nextqa(predictions, annotations), metrics.evaluate_predictions(...),
    metrics.format_table(metrics)
"""

