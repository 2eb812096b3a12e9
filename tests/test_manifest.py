"""Manifest lines that are not records: reported with their line numbers, skipped, the run goes on."""

from __future__ import annotations

import logging

from conftest import tiny_config
from extract.outputs import verify_output
from extract.pipeline import run_pipeline
from extract.store import OutputDir
from media import write_gif


def test_non_record_manifest_lines_are_reported_and_skipped(tmp_path, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_gif(videos / f"v{i}.gif", [60, 90] * 2, size=(48, 56))
    out = tmp_path / "out"
    config = tiny_config("folder", out, videos=videos, stages="appearance", shard_videos=1)
    assert run_pipeline(config).done == 3
    manifest = out / "manifest.jsonl"
    good = manifest.read_bytes().splitlines(keepends=True)
    bad = [b"[1, 2, 3]\n", b"null\n", b"{}\n", b'{"key": "v9", "status": "weird"}\n', b"\xff\xfe not utf-8\n",
           b"garbage in the middle\n"]
    manifest.write_bytes(good[0] + b"".join(bad) + b"".join(good[1:]))
    bad_lines = range(2, 2 + len(bad))

    records, problems = OutputDir(out).read_manifest_checked()
    assert sorted(records) == ["v0", "v1", "v2"]
    assert [int(p.split("line ")[1].split(":")[0]) for p in problems] == list(bad_lines)
    assert "not UTF-8" in problems[4] and "not JSON" in problems[5]

    with caplog.at_level(logging.WARNING, logger="extract"):
        summary = run_pipeline(config)
    assert (summary.done, summary.skipped) == (0, 3)
    warned = [r.getMessage() for r in caplog.records if "manifest.jsonl: line" in r.getMessage()]
    assert len(warned) == len(bad)
    found = verify_output(out)
    assert len(found) == len(bad) and all(f"line {n}:" in p for n, p in zip(bad_lines, found))


def test_torn_record_of_a_killed_run_is_not_a_problem(tmp_path):
    out = OutputDir(tmp_path)
    out.append_manifest([{"key": "a", "path": "/a.gif", "status": "failed", "reason": "x"}])
    with open(out.manifest_path, "ab") as f:
        f.write('{"key": "b", "path": "/vidéo'.encode()[:-1])  # killed mid-append, mid-character
    assert out.read_manifest_checked() == ({"a": out.read_manifest()["a"]}, [])
    out.append_manifest([{"key": "c", "path": "/c.gif", "status": "failed", "reason": "y"}])
    records, problems = out.read_manifest_checked()
    assert sorted(records) == ["a", "c"] and problems == []
