"""What the paper tables read, validated: the per-experiment reports, the published numbers, the sweep.

Inputs (read only):

- ``reports/<name>.json`` for the six experiments of ``pipeline.params.EXPERIMENTS`` plus
  ``reports/supervised.json`` (the supervised cross-entropy baseline of the same encoder): one flat
  JSON object each, with the metric keys of DESIGN.md ("Contracts other tools rely on"); a value
  averaged over seeds keeps its key and adds ``<key>_std``. A missing file or key is rendered as
  "–" so a partial run still reports; a file that is not valid JSON, not a flat object, or holds a
  non-numeric metric is a :class:`~pipeline.errors.DataError` that names the file (and the key).
- ``pipeline/report/paper_results.yaml`` beside this module: the published numbers.
- ``reports/sweep.json`` when present (summarised at the end; ignored when absent).

Units. Reports store accuracies (``accuracy``, ``accuracy_default``, ``accuracy_tuned``), precision,
recall and linear-probe top-1 (``probe_top1``, ``probe_top5``, ``probe_top1_*``) as **fractions in
[0, 1]**; a stored value above 1 is rejected here as a unit error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import DataError
from pipeline.params import EXPERIMENTS

__all__ = [
    "PAPER_RESULTS", "REPORT_NAMES", "load_paper_results", "read_json_object", "read_metrics", "read_reports",
    "read_sweep",
]

REPORT_NAMES: tuple[str, ...] = (*EXPERIMENTS, "supervised")
"""The per-experiment metric files read from the reports folder (``<name>.json``)."""

PAPER_RESULTS = Path(__file__).parent / "paper_results.yaml"

# Keys whose values are fractions in [0, 1] (converted to percent on display, or kept as fractions).
_FRACTION_KEYS = frozenset(
    {
        "accuracy",
        "accuracy_default",
        "accuracy_tuned",
        "precision",
        "recall",
        "probe_top1",
        "probe_top5",
        "probe_top1_anchor",
        "probe_top1_latent_alpha0",
        "probe_top1_latent_alpha1",
    }
)
_NUMERIC_KEYS = _FRACTION_KEYS | {
    "fid",
    "fid_conditional",
    "fid_euler",
    "inception_score",
    "recon_error",
    "seed_count",
    "num_samples",
    "tuned_alpha",
    "tuned_batch",
}
_STRING_KEYS = frozenset({"feature_network", "dataset", "sampler"})


def load_paper_results(path: Path = PAPER_RESULTS) -> dict[str, Any]:
    """The published numbers shipped with the project (``pipeline/report/paper_results.yaml``)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping at the top level")
    return data


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a :class:`DataError` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_metrics(path: Path) -> dict[str, Any]:
    """One ``reports/<name>.json``: validated flat object; ``{}`` when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = read_json_object(path)
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise DataError(
                f"{path}: expected a flat JSON object, but key {key!r} holds a {type(value).__name__}"
            )
        base = key.removesuffix("_std")
        if value is None:
            continue
        if key in _STRING_KEYS:
            if not isinstance(value, str):
                raise DataError(f"{path}: key {key!r} must be a string, got {value!r}")
        elif key in _NUMERIC_KEYS or (key.endswith("_std") and base in _NUMERIC_KEYS):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataError(f"{path}: key {key!r} must be a number, got {value!r}")
            if key in _FRACTION_KEYS and math.isfinite(value) and not 0.0 <= value <= 1.0:
                raise DataError(
                    f"{path}: key {key!r} must be a fraction in [0, 1], got {value!r} "
                    "(reports store accuracies and precision/recall as fractions)"
                )
    return data


def read_reports(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """All metric files of :data:`REPORT_NAMES`; a missing file maps to ``{}``."""
    reports_dir = Path(reports_dir)
    return {name: read_metrics(reports_dir / f"{name}.json") for name in REPORT_NAMES}


def read_sweep(reports_dir: Path) -> dict[str, Any] | None:
    """``reports/sweep.json`` as written by the sweep stage; ``None`` when it does not exist."""
    path = Path(reports_dir) / "sweep.json"
    return read_json_object(path) if path.is_file() else None
