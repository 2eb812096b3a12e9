"""Every closed list of names the project accepts, in one place.

Configs, the command line, the dataset adapters and the VideoQA trainers all read these;
a ``Literal[...]`` built from a tuple here (``Literal[DATASETS]``) validates against it.
"""

from __future__ import annotations

DATASETS = ("tgif", "msvd", "msrvtt", "nextqa", "folder", "demo", "demo-mc")  # `extract run --dataset`
TGIF_FORMAT = ("tgif", "demo", "folder")  # datasets whose questions follow TGIF-QA's four tasks
NEXTQA_FORMAT = ("nextqa", "demo-mc")  # NExT-QA's split CSVs: five candidates, question types CW..DO
STAGES = ("appearance", "objects", "motion", "trajectories")  # feature stages, in storage order
EXECUTORS = ("local", "ray")  # who runs the videos: this process, or a Ray cluster
APPEARANCE_ARCHS = ("resnet152", "resnet50")  # keys of extract.models.appearance.APPEARANCE_WEIGHTS
DETECTOR_ARCHS = ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_320_fpn")  # ... DETECTOR_WEIGHTS
MOTION_ARCHS = ("i3d_r50",)  # ... of extract.models.motion.MOTION_WEIGHTS
PRESETS = ("paper", "tiny")  # architecture presets (extract.config.PRESETS holds their values)
SPLITS = ("train", "val", "test")  # question splits of every dataset
QUESTION_SPLITS = (*SPLITS, "total")  # "total": a TGIF-QA task shipped only as a Total_ file
TGIF_TASKS = ("count", "action", "transition", "frameqa")  # TGIF-QA's tasks, canonical names
# What the command line accepts for a TGIF task (any case): TGIF-QA's file prefixes included.
TGIF_TASK_ALIASES = {"count": "count", "action": "action", "trans": "transition", "transition": "transition",
                     "frameqa": "frameqa"}
VIDEO_EXTENSIONS = (".gif", ".mp4", ".avi", ".webm", ".mkv", ".mov")  # files the folder dataset picks up
PROGRESS_MODES = ("auto", "bar", "log", "none")  # auto: a rich bar on a terminal, log lines otherwise
