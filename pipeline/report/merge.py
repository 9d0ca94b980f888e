"""Merge the evaluation stages' partial reports into one flat metrics file per experiment.

Each evaluation stage owns its own DVC out (``reports/probe/<name>.json``, ``reports/fid/<name>.json``,
``reports/classify/<name>.json``); the ``report`` stage merges them into ``reports/<name>.json`` — the
DVC metrics that ``dvc metrics diff`` compares (DESIGN.md "Contracts": one flat object per
experiment). A key reported by two stages must agree, else the merge is an error naming both files;
the free-text descriptions every stage writes of itself (``protocol``, ``method``) are kept apart as
``<part>_<key>`` (``probe_protocol``, ``classify_protocol``). A partial report that is not a JSON
object, or two that disagree, is a :class:`~pipeline.errors.DataError` naming the file(s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import DataError
from pipeline.io import write_json

PARTS = ("probe", "classify", "fid")
"""Sub-folders of ``reports/`` written by the evaluation stages."""

PER_PART = frozenset({"protocol", "method"})
"""Keys describing the stage that wrote them: merged as ``<part>_<key>``, never compared."""


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def merge_reports(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """Merged metrics per report name (experiment or ``supervised``) from ``reports/<part>/*.json``."""
    reports_dir = Path(reports_dir)
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], Path] = {}
    for part in PARTS:
        folder = reports_dir / part
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            name = path.stem
            target = merged.setdefault(name, {})
            for key, value in _read(path).items():
                if isinstance(value, (dict, list)):
                    continue  # details (grids, per-seed lists) stay in the stage's own file
                if key in PER_PART:
                    key = f"{part}_{key}"
                if key == "seed_count" and key in target:
                    target[key] = min(target[key], value)  # seeds that every stage evaluated
                    continue
                if key in target and target[key] != value:
                    raise DataError(
                        f"{path}: {key}={value!r} disagrees with {origin[(name, key)]}: {target[key]!r}"
                    )
                target[key] = value
                origin.setdefault((name, key), path)
    return merged


def write_merged(reports_dir: Path) -> list[Path]:
    """Write ``reports/<name>.json`` for every merged report (atomically); return the paths."""
    written = []
    for name, metrics in sorted(merge_reports(reports_dir).items()):
        written.append(write_json(Path(reports_dir) / f"{name}.json", metrics, sort_keys=True))
    return written
