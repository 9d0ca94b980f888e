"""Helpers of the report-package tests: a full set of fixture reports and readers of the markdown."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COMMON = {"dataset": "digits 8x8", "num_samples": 1000, "seed_count": 3, "feature_network": "digits-resnet"}


def fixture_reports(rf_lzn_better: bool = True) -> dict[str, dict]:
    """A full set of reports; RF+LZN (and the joint model) better or worse than their baselines."""
    good = rf_lzn_better
    return {
        "rf": {**COMMON, "fid": 12.3456, "fid_std": 0.5, "inception_score": 4.1, "precision": 0.61,
               "recall": 0.52, "recon_error": 0.0712},
        "rf_lzn": {**COMMON, "fid": 11.2 if good else 13.9, "fid_std": 0.4, "inception_score": 4.3,
                   "precision": 0.62 if good else 0.60, "recall": 0.55, "recon_error": 0.031 if good else 0.09},
        "simclr": {"dataset": "digits 8x8", "seed_count": 3, "probe_top1": 0.9, "probe_top5": 0.99},
        "lzn_repr": {"dataset": "digits 8x8", "seed_count": 3, "probe_top1": 0.92 if good else 0.85,
                     "probe_top1_std": 0.01, "probe_top5": 0.995},
        "rf_cond": {**COMMON, "fid": 10.0, "fid_conditional": 9.0, "inception_score": 4.5, "precision": 0.6,
                    "recall": 0.5, "recon_error": 0.05},
        "lzn_joint": {**COMMON, "fid_conditional": 8.5 if good else 9.5, "inception_score": 4.6,
                      "precision": 0.62, "recall": 0.5, "recon_error": 0.02, "accuracy_default": 0.9,
                      "accuracy_tuned": 0.9447 if good else 0.93, "tuned_alpha": 0.4, "tuned_batch_size": 300},
        "supervised": {"dataset": "digits 8x8", "seed_count": 3, "accuracy": 0.94},
    }  # fmt: skip


def write_reports(folder: Path, reports: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, metrics in reports.items():
        (folder / f"{name}.json").write_text(json.dumps(metrics))
    return folder


def section(md: str, heading: str) -> str:
    start = md.index(heading)
    end = md.find("\n## ", start + 1)
    return md[start : end if end >= 0 else None]


def row(md: str, heading: str, label: str) -> list[str]:
    rows = [line for line in section(md, heading).splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, (label, rows)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def claim_statuses(result: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result["claims"]}


def claim_line(md: str, text: str) -> str:
    (line,) = [line for line in md.splitlines() if line.startswith("- **") and text in line]
    return line
