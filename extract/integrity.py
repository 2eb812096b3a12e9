"""Checks of ``extract verify`` beyond one shard at a time: the MASN and trajectory index files
hold exactly the done keys, each linked to its own record's shard, and the done records agree
on their settings fingerprint."""

from __future__ import annotations

import json
import os
from collections import defaultdict

from extract.fingerprint import FINGERPRINT, differences, known_fingerprints
from extract.index_files import INDEX_CONTENTS
from extract.masn_index import MASN_INDEX_FILES
from extract.store import DONE, MASN_DIR, RUN_FILE, SHARD_PREFIX, SHARDS_DIR, TRAJECTORIES, TRAJECTORY_INDEX, \
    OutputDir, sha256_file, shard_path


def _run_json(out: OutputDir) -> dict:
    try:
        run = json.loads((out.root / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def fingerprint_problems(out: OutputDir, manifest: dict[str, dict]) -> list[str]:
    """One line when the done records were made with more than one settings fingerprint."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, record in manifest.items():
        if record["status"] == DONE:
            groups[str(record.get(FINGERPRINT) or "none (an older version)")].append(key)
    if len(groups) < 2:
        return []
    known = known_fingerprints(_run_json(out))
    parts = [f"{len(keys)} with {fp[:12]} ({', '.join(sorted(keys)[:3])})" for fp, keys in sorted(groups.items())]
    line = f"{out.manifest_path}: done videos were made with different settings: {'; '.join(parts)}"
    prints = sorted(groups)
    if all(fp in known for fp in prints[:2]):
        line += " [" + "; ".join(differences(known[prints[0]], known[prints[1]])) + "]"
    return [line + "; rerun with --reextract to make them agree"]


def index_problems(out: OutputDir, manifest: dict[str, dict]) -> list[str]:
    """Index files missing or unreadable, done keys missing from one, and links that point
    elsewhere than ``/<array>/<key>`` of the key's own shard (keys swapped, stale links)."""
    import h5py

    done = {k: r for k, r in manifest.items() if r["status"] == DONE}
    dataset = (_run_json(out).get("config") or {}).get("dataset")
    if dataset not in MASN_INDEX_FILES:
        return [f"{out.root / RUN_FILE}: missing or without a dataset: the index files cannot be checked"]
    names = MASN_INDEX_FILES[dataset]._asdict()
    expected = []  # (path, {group: array}, keys, link target of a key)
    for role, (stages, contents) in INDEX_CONTENTS.items():
        path = out.root / MASN_DIR / names[role]
        rel = os.path.relpath(out.shards, path.parent)
        keys = sorted(k for k, r in done.items() if stages <= set(r.get("stages", ())))
        expected.append((path, contents, keys, rel))
    traj = sorted(k for k, r in done.items() if TRAJECTORIES in r.get("stages", ()))
    expected.append((out.root / TRAJECTORY_INDEX, {"": TRAJECTORIES}, traj, SHARDS_DIR))
    problems = []
    for path, contents, keys, rel in expected:
        if not keys:
            continue
        name = path.relative_to(out.root)
        if not path.is_file():
            problems.append(f"{name}: index file is missing ({len(keys)} done videos belong in it)")
            continue
        try:
            with h5py.File(path, "r") as f:
                for group, array in contents.items():
                    node = f[group] if group else f
                    where = f"{name}/{group}" if group else f"{name}"
                    missing = sorted(set(keys) - set(node))
                    if missing:
                        problems.append(f"{where}: {len(missing)} done videos missing ({', '.join(missing[:5])})")
                    for key in sorted(set(keys) & set(node)):
                        link = node.get(key, getlink=True)
                        want = (f"{rel}/{done[key]['shard']}", "/" + shard_path(array, key))
                        got = (getattr(link, "filename", None), getattr(link, "path", None))
                        if got != want:
                            problems.append(f"{where}: {key} points to {got[0]}:{got[1]}, not {want[0]}:{want[1]}")
        except (OSError, KeyError) as e:
            problems.append(f"{name}: index file cannot be read ({e})")
    return problems


def shard_number(name: str) -> int:
    """The number of shard ``part-XXXXX.h5``; -1 for another name."""
    digits = name[len(SHARD_PREFIX):].split(".")[0] if name.startswith(SHARD_PREFIX) else ""
    return int(digits) if digits.isdigit() else -1


def superseded(key: str, shard: str, latest: dict[str, dict]) -> bool:
    """Whether a copy of ``key`` in ``shard`` is an old one that a later commit replaced.

    Shards are numbered in commit order (a number is reused only after its shard is gone), so
    a copy is superseded when the key's done record points to a newer shard: the video was
    extracted again after a torn record, with more stages, or by --reextract.
    """
    record = latest.get(key)
    return bool(record) and record["status"] == DONE and shard_number(record["shard"]) > shard_number(shard)


def shard_damage(out: OutputDir, done: dict[str, dict], *, checksums: bool) -> dict[str, str]:
    """Shard name -> what is wrong with it, for the shards of ``done`` records that are missing,
    not of their recorded size (``shard_bytes``; older records have none), or, with ``checksums``,
    not of their recorded sha256."""
    by_shard: dict[str, list[dict]] = {}
    for record in done.values():
        by_shard.setdefault(record["shard"], []).append(record)
    damage = {}
    for name, records in sorted(by_shard.items()):
        path = out.shards / name
        sizes = {r["shard_bytes"] for r in records if isinstance(r.get("shard_bytes"), int)}
        digests = {r["sha256"] for r in records if isinstance(r.get("sha256"), str)}
        if not path.is_file():
            damage[name] = f"shard {name} is missing"
        elif sizes and path.stat().st_size not in sizes:
            damage[name] = f"shard {name} has {path.stat().st_size} bytes, {min(sizes)} recorded"
        elif checksums and digests and sha256_file(path) not in digests:
            damage[name] = f"shard {name} has another sha256 than recorded"
    return damage
