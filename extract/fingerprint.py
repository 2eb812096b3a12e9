"""The settings fingerprint: which settings made a video's features, so a resume never mixes two.

Every done manifest record carries ``fingerprint``, the sha256 of the canonical JSON of
:func:`fingerprint_fields`; ``run.json`` keeps the fields of every fingerprint the OUT has seen,
so a mismatch names the settings that differ.

In the fingerprint: the resolved sampling, appearance, detector (``batch_size`` included: only 1
is batch-invariant), motion, roi (``fast`` included) and linking sections; ``decode.max_side``
(it downscales frames); the runtime settings that change bits (``amp``, ``batch_size``,
``cudnn``, ``channels_last`` on CUDA only; the detector's batch as resolved for the device);
the weights' identity (random and its seed, or each checkpoint's file name: torchvision's
carry a sha256 prefix); and the source of the detections (the detector, or the external
detections' path, missing policy and tolerance; their files' sha256 are in run.json).

Not in it: ``decode.part_steps`` (streaming in parts is bit-identical, by test),
``decode.max_pixels`` (only refuses videos; a refused video is failed and retried), device and
threads (float rounding only: RuntimeConfig's contract), the stages (a record lists its own
stages; a run that adds stages extracts those videos again, as before), and executor, limit,
sharding and paths.
"""

from __future__ import annotations

import hashlib
import json

from extract.config import RunConfig
from extract.models.weights import RANDOM, PRETRAINED
from extract.names import STAGES

FINGERPRINT = "fingerprint"  # the manifest record field


class SettingsChanged(ValueError):
    """A rerun's settings differ from those of the videos already in OUT."""


def fingerprint_fields(config: RunConfig, device: str) -> dict[str, object]:
    """Dotted setting name -> value of everything that changes a video's features.

    ``device`` is the device the models run on (``cpu``, ``cuda:0``): ``channels_last`` only
    changes bits on CUDA.
    """
    import torch

    from extract.features import required_weights
    from extract.features.runtime import detector_batch

    sections = {"sampling": config.sampling, "appearance": config.appearance, "detector": config.detector,
                "motion": config.motion, "roi": config.roi, "linking": config.linking}
    fields: dict[str, object] = {}
    for name, section in sections.items():
        values = section.model_dump(mode="json") if hasattr(section, "model_dump") else _dataclass_dict(section)
        fields |= {f"{name}.{k}": v for k, v in values.items()}
    runtime = config.runtime
    fields["decode.max_side"] = config.decode.max_side
    fields["runtime.amp"] = runtime.amp
    fields["runtime.batch_size"] = runtime.batch_size  # the batch rule's full batch
    fields["runtime.cudnn"] = runtime.cudnn if device.startswith("cuda") else None
    fields["runtime.channels_last"] = runtime.channels_last if device.startswith("cuda") else None
    fields["detector.batch_size"] = detector_batch(config, torch.device(device))  # 0 (auto) resolved
    fields["weights.mode"] = config.weights if config.weights in (RANDOM, PRETRAINED) else "directory"
    if config.weights == RANDOM:
        fields["weights.seed"] = config.seed
    else:
        for role, spec in sorted(required_weights(config, STAGES).items()):
            fields[f"weights.{role}"] = spec.filename
    dets = config.detections
    fields["detections.source"] = "detector" if dets.path is None else str(dets.path)
    if dets.path is not None:
        fields["detections.missing"] = dets.missing
        fields["detections.tolerance_s"] = dets.tolerance_s if dets.tolerance_s is not None else 0.5 / config.sampling.fps
    return fields


def _dataclass_dict(section) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(section)))


def fingerprint(fields: dict[str, object]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``fields``."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def differences(old: dict | None, new: dict) -> list[str]:
    """``name: old -> new`` per field that differs; ``old`` None means its fields are unknown."""
    if old is None:
        return ["(the settings of the earlier run are not recorded in run.json)"]
    names = sorted(set(old) | set(new))
    return [f"{n}: {json.dumps(old.get(n))} -> {json.dumps(new.get(n))}" for n in names if old.get(n) != new.get(n)]


def check_resume(done: dict[str, dict], current: str, fields: dict, known: dict[str, dict], out: str) -> None:
    """Raise SettingsChanged when a done record was made with other settings (or unknown ones).

    Args:
        done: key -> latest done record of OUT.
        current: this run's fingerprint; ``fields`` its fields.
        known: fingerprint -> fields, from run.json.
    """
    by_print: dict[str | None, list[str]] = {}
    for key, record in done.items():
        if record.get(FINGERPRINT) != current:
            by_print.setdefault(record.get(FINGERPRINT), []).append(key)
    if not by_print:
        return
    how = (f"To proceed: write to another --out, or rerun with --reextract to extract every video of {out} "
           "again under the new settings (the old copies are then dropped).")
    lines = []
    for old, keys in sorted(by_print.items(), key=lambda item: str(item[0])):
        sample = ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")
        if old is None:
            lines.append(f"  {len(keys)} done videos ({sample}) were written without a settings fingerprint "
                         "(an older version): their settings are unknown")
        else:
            lines.append(f"  {len(keys)} done videos ({sample}) were made with other settings:")
            lines += [f"    {d}" for d in differences(known.get(old), fields)]
    raise SettingsChanged(f"{out} holds videos extracted with other settings than this run's:\n"
                          + "\n".join(lines) + "\n" + how)


def known_fingerprints(run_json: dict) -> dict[str, dict]:
    """Fingerprint -> fields of every settings an OUT has seen, from its run.json (or {})."""
    known = dict(run_json.get("fingerprints") or {})
    current = run_json.get("fingerprint") or {}
    if isinstance(current, dict) and "sha256" in current:
        known[current["sha256"]] = current.get("fields")
    return {k: v for k, v in known.items() if isinstance(v, dict)}
