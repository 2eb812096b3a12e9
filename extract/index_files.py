"""The index files of an output directory, rewritten from the manifest after every run:
``OUT/masn/`` (the four files the original MASN loaders open, names in ``masn_index``) and
``OUT/trajectories.h5``. Both hold HDF5 external links into the shards, no copies.
"""

from __future__ import annotations

import os
from pathlib import Path

from extract.atomic import atomic_path
from extract import layout
from extract.layout import shard_path
from extract.masn_index import MASN_INDEX_FILES
from extract.store import MASN_DIR, SHARDS_DIR, TRAJECTORIES, TRAJECTORY_INDEX, OutputDir

# MASN index file role -> (stages that produce it, {group inside the index file: shard array}).
INDEX_CONTENTS = {
    "appearance_global": ({"appearance"}, {"": layout.APPEARANCE.name}),
    "motion_global": ({"motion"}, {"": layout.MOTION.name}),
    "appearance_objects": (
        {"objects"},
        {"image_features": layout.IMAGE_FEATURES.name, "spatial_features": layout.SPATIAL_FEATURES.name},
    ),
    "motion_objects": ({"objects", "motion"}, {"": layout.MOTION_OBJECTS.name}),
}


def build_index(out: OutputDir, dataset: str) -> dict[str, Path]:
    """(Re)write ``OUT/masn/`` from the manifest: external links to every done key.

    Links are relative (``../../shards/part-XXXXX.h5``), which HDF5 resolves against the index
    file's own directory, so the files open from any working directory and move with OUT.
    A key enters a file only if its record lists the stages that file needs. Each file is
    written to a temp name and renamed. Returns role -> path of the files written.
    """
    import h5py

    done = out.done()
    written: dict[str, Path] = {}
    names = MASN_INDEX_FILES[dataset]._asdict()
    for role, (stages, contents) in INDEX_CONTENTS.items():
        keys = sorted(k for k, r in done.items() if stages <= set(r.get("stages", ())))
        path = out.root / MASN_DIR / names[role]
        if not keys:
            path.unlink(missing_ok=True)
            continue
        rel = os.path.relpath(out.shards, path.parent)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for group in contents:
                if group:
                    f.require_group(group)
            for key in keys:
                target = f"{rel}/{done[key]['shard']}"
                for group, array in contents.items():
                    (f[group] if group else f)[key] = h5py.ExternalLink(target, "/" + shard_path(array, key))
        written[role] = path
    traj_keys = sorted(k for k, r in done.items() if TRAJECTORIES in r.get("stages", ()))
    path = out.root / TRAJECTORY_INDEX
    if traj_keys:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for key in traj_keys:
                f[key] = h5py.ExternalLink(f"{SHARDS_DIR}/{done[key]['shard']}", f"/{TRAJECTORIES}/{key}")
        written[TRAJECTORIES] = path
    else:
        path.unlink(missing_ok=True)
    return written
