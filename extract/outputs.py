"""Reading an output directory back: ``extract inspect`` (what is there) and ``extract verify``
(is it complete and sound)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from extract.integrity import fingerprint_problems, index_problems, superseded
from extract.layout import AXIS_LETTER, SPECS, check_video, nan_allowed
from extract.store import DONE, FAILED, MASN_DIR, SHARD_SUFFIX, OutputDir, sha256_file


def video_arrays(f, key: str) -> dict[str, object]:
    """Every dataset of ``key`` in an open shard, by array name (``detections/boxes``...)."""
    found = {}
    for group in f:
        if key not in f[group]:
            continue
        node = f[group][key]
        if hasattr(node, "shape"):
            found[group] = node
        else:
            node.visititems(lambda name, obj, g=group: found.__setitem__(f"{g}/{name}", obj) if hasattr(obj, "shape") else None)
    return found


def inspect_output(root: Path) -> list[str]:
    """Human-readable lines: manifest counts, then per feature array the key count and shapes."""
    import h5py

    out = OutputDir(root)
    manifest = out.read_manifest()
    status = Counter(r["status"] for r in manifest.values())
    lines = [f"{root}: {len(manifest)} videos in the manifest ({status[DONE]} done, {status[FAILED]} failed)"]
    shapes: dict[str, Counter] = defaultdict(Counter)
    by_shard = defaultdict(list)
    for key, r in manifest.items():
        if r["status"] == DONE:
            by_shard[r["shard"]].append(key)
    for shard, keys in sorted(by_shard.items()):
        if not (out.shards / shard).is_file():
            lines.append(f"shard {shard} is missing ({len(keys)} done videos; `extract verify` for details)")
            continue
        try:
            with h5py.File(out.shards / shard, "r") as f:
                for key in keys:
                    for name, ds in video_arrays(f, key).items():
                        spec = SPECS.get(name)
                        first = AXIS_LETTER[spec.axis] if spec else "?"
                        shapes[name][f"{(first,) + ds.shape[1:]} {ds.dtype}"] += 1
        except OSError as e:
            lines.append(f"shard {shard} cannot be read ({e})")
    lines.append(f"{len(by_shard)} shards")
    for name in sorted(shapes):
        kinds = ", ".join(f"{shape} x{n}" for shape, n in shapes[name].most_common())
        lines.append(f"  {name}: {sum(shapes[name].values())} videos, {kinds}")
    masn = out.root / MASN_DIR
    for path in sorted(masn.rglob("*.hdf5")) if masn.exists() else []:
        try:
            with h5py.File(path, "r") as f:
                count = len(f["image_features"]) if "image_features" in f else len(f)
        except OSError as e:
            lines.append(f"  index {path.relative_to(out.root)}: cannot be read ({e})")
            continue
        lines.append(f"  index {path.relative_to(out.root)}: {count} keys")
    for key, r in sorted(manifest.items()):
        if r["status"] == FAILED:
            lines.append(f"  failed {key}: {r['reason']}")
    return lines


def verify_output(root: Path, *, checksums: bool = True) -> list[str]:
    """Problems found in ``root``; an empty list means the output is sound.

    Checks: every manifest line is a record; every done record's shard exists (and, with
    ``checksums``, still has the sha256 recorded at commit); its arrays exist, have the names,
    dtypes and trailing shapes of the layout (``extract.layout``), agree on T, N and F, and are
    finite where NaN is not legal; failed videos are absent from the MASN index; every index
    link resolves; every index file holds each done key, linked to its own shard; the done
    records agree on their settings fingerprint. Copies of a video that a later commit
    superseded are not problems.
    """
    import h5py

    out = OutputDir(root)
    if not out.manifest_path.exists():
        return [f"{out.manifest_path}: no manifest"]
    manifest, problems = out.read_manifest_checked()
    by_shard = defaultdict(list)
    for key, r in manifest.items():
        if r["status"] == DONE:
            by_shard[r["shard"]].append(key)
    for shard, keys in sorted(by_shard.items()):
        path = out.shards / shard
        if not path.exists():
            problems.append(f"shard {shard} is missing (records: {', '.join(sorted(keys)[:5])})")
            continue
        recorded = {manifest[k].get("sha256") for k in keys} - {None}
        if checksums and recorded and sha256_file(path) not in recorded:
            problems.append(f"shard {shard} changed after commit (sha256 differs from the manifest)")
        try:
            with h5py.File(path, "r") as f:
                for key in keys:
                    problems += _verify_video(f, key, manifest[key], shard)
        except OSError as e:
            problems.append(f"shard {shard} cannot be read ({e}); records: {', '.join(sorted(keys)[:5])}")
    problems += _verify_unrecorded(out, by_shard, manifest)
    problems += _verify_index(out, manifest)
    problems += index_problems(out, manifest)
    problems += fingerprint_problems(out, manifest)
    return problems


def _verify_unrecorded(out: OutputDir, by_shard: dict[str, list[str]], manifest: dict[str, dict]) -> list[str]:
    """Shards no record points to, and videos stored in a shard without a done record for it.

    A copy that a later commit superseded (``store.superseded``: the video was extracted again
    after a torn record, with more stages, or by --reextract) is tolerated; the next run removes
    a shard that holds only such copies.
    """
    import h5py

    problems = []
    for path in sorted(out.shards.glob(f"*{SHARD_SUFFIX}")) if out.shards.exists() else []:
        try:
            with h5py.File(path, "r") as f:
                stored = {key for group in f.values() for key in group}
        except OSError as e:
            if path.name not in by_shard:  # else reported with its records
                problems.append(f"shard {path.name} cannot be read ({e})")
            continue
        stale = {k for k in stored - set(by_shard.get(path.name, ())) if superseded(k, path.name, manifest)}
        if path.name not in by_shard:
            if not stored or stale != stored:
                problems.append(f"shard {path.name} has data but no manifest record points to it")
            continue
        for key in sorted(stored - set(by_shard[path.name]) - stale):
            problems.append(f"{key}: data in {path.name} without a done manifest record for that shard")
    return problems


def _verify_video(f, key: str, record: dict, shard: str) -> list[str]:
    arrays = video_arrays(f, key)
    if not arrays:
        return [f"{key}: manifest says done in {shard} but the shard has no data for it"]
    problems = [f"{key}: {p}" for p in check_video({name: (ds.shape, ds.dtype) for name, ds in arrays.items()})]
    steps = {name: ds.shape[0] for name, ds in arrays.items() if name in SPECS and SPECS[name].axis == "step"}
    if record.get("steps") is not None and steps and set(steps.values()) != {record["steps"]}:
        problems.append(f"{key}: manifest T = {record['steps']} but arrays have {sorted(set(steps.values()))}")
    for name, ds in arrays.items():
        if ds.dtype.kind == "f" and not nan_allowed(name) and not np.isfinite(ds[()]).all():
            problems.append(f"{key}: {name} has NaN or Inf")
    return problems


def _verify_index(out: OutputDir, manifest: dict[str, dict]) -> list[str]:
    import h5py

    problems = []
    masn = out.root / MASN_DIR
    done = {k for k, r in manifest.items() if r["status"] == DONE}
    steps: dict[str, dict[str, int]] = defaultdict(dict)  # key -> {index dataset: T}
    for path in sorted(masn.rglob("*.hdf5")) if masn.exists() else []:
        try:
            f = h5py.File(path, "r")
        except OSError:
            continue  # reported by index_problems
        with f:
            groups = [(f"{path.name}/{g}", f[g]) for g in ("image_features", "spatial_features") if g in f]
            for name, group in groups or [(path.name, f)]:
                for key in group:
                    if key not in done:
                        problems.append(f"{path.name}: key {key} is not a done video")
                        continue
                    try:
                        steps[key][name] = group[key].shape[0]
                    except (KeyError, OSError) as e:
                        problems.append(f"{path.name}: link for {key} does not resolve ({e})")
    for key, per_file in sorted(steps.items()):
        if len(set(per_file.values())) > 1:
            problems.append(f"{key}: T differs across the MASN index files: {per_file}")
    return problems
