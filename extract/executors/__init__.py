"""Executors orchestrate ``extract.worker`` over many videos; they compute nothing themselves."""
