"""What the paper tables compare, and how: the metric columns, this run's cells, directions and verdicts.

A *cell* is one metric of one row: this run's ``value`` and ``std`` in display units (fractions
of ``percent`` metrics times 100), the report ``key`` they came from, and the ``paper`` value.

Verdicts. A "direction" compares the LZN variant with its baseline as the paper does (FID and
reconstruction lower is better; IS, precision, recall and accuracy higher is better). It *holds*
when this run's direction equals the paper's; where the paper shows a tie (e.g. CIFAR10 precision
0.70 vs 0.70) it holds when the LZN variant is not worse. A missing value gives *not measured*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOLDS, DOES_NOT_HOLD, NOT_MEASURED = "holds", "does not hold", "not measured"
DASH = "–"


@dataclass(frozen=True)
class Metric:
    key: str  # key in reports/<name>.json
    label: str
    better: str  # "lower" | "higher"
    percent: bool = False  # stored as a fraction, displayed in percent
    decimals: int = 2
    paper_key: str | None = None  # key in paper_results.yaml rows
    paper_decimals: int = 2

    @property
    def arrow(self) -> str:
        return "↓" if self.better == "lower" else "↑"


GEN_METRICS: tuple[Metric, ...] = (
    Metric("fid", "FID", "lower", paper_key="fid"),
    Metric("inception_score", "IS", "higher", paper_key="is"),
    Metric("precision", "Prec", "higher", paper_key="precision"),
    Metric("recall", "Rec", "higher", paper_key="recall"),
    Metric("recon_error", "Recon", "lower", paper_key="recon"),
)
ACCURACY = Metric("accuracy", "Acc %", "higher", percent=True, paper_key="accuracy")
PROBE_TOP1 = Metric("probe_top1", "top-1 %", "higher", percent=True, paper_key="top1", paper_decimals=1)
PROBE_TOP5 = Metric("probe_top5", "top-5 %", "higher", percent=True, paper_key="top5", paper_decimals=1)


# ------------------------------------------------------------------------------------ values
def finite(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def scalar(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    return float(value) if finite(value) else None


def run_cell(report: Mapping[str, Any], key: str, percent: bool = False) -> dict[str, Any]:
    """This run's value (and std) of ``key`` in display units, plus which key it came from."""
    scale = 100.0 if percent else 1.0
    value = report.get(key)
    std = report.get(f"{key}_std")
    seeds = report.get("seed_count")
    if isinstance(seeds, int) and seeds < 2:
        std = None  # one seed: a std of 0 is no measure of noise, so none is shown or compared
    return {
        "value": float(value) * scale if finite(value) else None,
        "std": float(std) * scale if value is not None and finite(std) else None,
        "key": key if key in report else None,
    }


def lookup(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...``, or None where a level is missing or not a mapping."""
    for part in path:
        if not isinstance(mapping, Mapping) or part not in mapping:
            return None
        mapping = mapping[part]
    return mapping


# --------------------------------------------------------------------------------- comparing
def direction(candidate: float | None, baseline: float | None, better: str) -> str | None:
    """Direction of ``candidate`` vs ``baseline``: "better", "tie", "worse", or None if either is missing."""
    if candidate is None or baseline is None or not (math.isfinite(candidate) and math.isfinite(baseline)):
        return None
    if candidate == baseline:
        return "tie"
    improved = candidate < baseline if better == "lower" else candidate > baseline
    return "better" if improved else "worse"


def verdict(paper_dir: str | None, run_dir: str | None) -> str:
    """Whether this run's direction agrees with the paper's (a paper tie asks for "not worse")."""
    if run_dir is None or paper_dir is None:
        return NOT_MEASURED
    if paper_dir == "tie":
        return HOLDS if run_dir in ("better", "tie") else DOES_NOT_HOLD
    return HOLDS if run_dir == paper_dir else DOES_NOT_HOLD


def within_noise(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Whether two cells differ by at most their combined std; None when a value or std is missing."""
    if None in (a.get("value"), b.get("value"), a.get("std"), b.get("std")):
        return None
    return abs(a["value"] - b["value"]) <= math.hypot(a["std"], b["std"])


def compare(metric: Metric, cand: dict, base: dict, paper_cand: Any, paper_base: Any) -> dict[str, Any]:
    """The directions of ``cand`` vs ``base`` in this run and in the paper, and the verdict."""
    p_dir = direction(scalar(paper_cand), scalar(paper_base), metric.better)
    r_dir = direction(cand["value"], base["value"], metric.better)
    return {
        "better": metric.better,
        "paper": p_dir,
        "run": r_dir,
        "status": verdict(p_dir, r_dir),
        "within_one_std": within_noise(cand, base),
    }
