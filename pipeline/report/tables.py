"""The paper's Tables 1-4 regenerated from this run's metrics, beside the published numbers.

Inputs (read only):

- ``reports/<name>.json`` for the six experiments of ``pipeline.params.EXPERIMENTS`` plus
  ``reports/supervised.json`` (the supervised cross-entropy baseline of the same encoder): one flat
  JSON object each, with the metric keys of DESIGN.md ("Contracts other tools rely on"); a value
  averaged over seeds keeps its key and adds ``<key>_std``. A missing file or key is rendered as
  "–" so a partial run still reports; a file that is not valid JSON, not a flat object, or holds a
  non-numeric metric is a :class:`ValueError` that names the file (and the key).
- ``pipeline/report/paper_results.yaml`` beside this module: the published numbers.
- ``reports/sweep.json`` when present (summarised at the end; ignored when absent).

Units. Reports store accuracies (``accuracy``, ``accuracy_default``, ``accuracy_tuned``) and
linear-probe top-k (``probe_top1``, ``probe_top5``, ``probe_top1_*``) as **fractions in [0, 1]**;
the report converts them to **percent** (2 decimals), the unit the paper prints, and a stored value
above 1 is rejected as a unit error. Precision and recall stay fractions, as in the paper. FID, IS
and reconstruction error are printed with 2 decimals (3 significant digits below 0.1). Values
averaged over seeds print as ``mean ± std``. ``paper_tables.json`` carries the same comparison with
every number already in these display units (its ``units`` entry says so).

Verdicts. A "direction" compares the LZN variant with its baseline as the paper does (FID and
reconstruction lower is better; IS, precision, recall and accuracy higher is better). It *holds*
when this run's direction equals the paper's; where the paper shows a tie (e.g. CIFAR10 precision
0.70 vs 0.70) it holds when the LZN variant is not worse. A missing value gives *not measured*.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.params import EXPERIMENTS, flatten

REPORT_NAMES: tuple[str, ...] = (*EXPERIMENTS, "supervised")
"""The per-experiment metric files read from the reports folder (``<name>.json``)."""

PAPER_RESULTS = Path(__file__).parent / "paper_results.yaml"

HOLDS, DOES_NOT_HOLD, NOT_MEASURED = "holds", "does not hold", "not measured"
DASH = "–"

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

# Fig. 19 of the paper (ImageNet feature-choice ablation, top-1 %). Not in paper_results.yaml; a
# ``fig19_feature_ablation`` mapping there takes precedence. The extraction does not say which of
# 54.9 / 55.9 belongs to the anchor and which to the alpha = 0 latent (LZN_SPEC §5.14).
_FIG19_DEFAULT: dict[str, Any] = {
    "backbone": 65.6,
    "anchor": [54.9, 55.9],
    "latent_alpha0": [54.9, 55.9],
    "latent_alpha1": 11.9,
}


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


# ------------------------------------------------------------------------------------ reading
def load_paper_results(path: Path = PAPER_RESULTS) -> dict[str, Any]:
    """The published numbers shipped with the project (``pipeline/report/paper_results.yaml``)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_metrics(path: Path) -> dict[str, Any]:
    """One ``reports/<name>.json``: validated flat object; ``{}`` when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = _read_json_object(path)
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise ValueError(
                f"{path}: expected a flat JSON object, but key {key!r} holds a {type(value).__name__}"
            )
        base = key.removesuffix("_std")
        if value is None:
            continue
        if key in _STRING_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"{path}: key {key!r} must be a string, got {value!r}")
        elif key in _NUMERIC_KEYS or (key.endswith("_std") and base in _NUMERIC_KEYS):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{path}: key {key!r} must be a number, got {value!r}")
            if key in _FRACTION_KEYS and math.isfinite(value) and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"{path}: key {key!r} must be a fraction in [0, 1], got {value!r} "
                    "(reports store accuracies and precision/recall as fractions)"
                )
    return data


def read_reports(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """All metric files of :data:`REPORT_NAMES`; a missing file maps to ``{}``."""
    reports_dir = Path(reports_dir)
    return {name: read_metrics(reports_dir / f"{name}.json") for name in REPORT_NAMES}


def read_sweep(reports_dir: Path) -> dict[str, Any] | None:
    path = Path(reports_dir) / "sweep.json"
    return _read_json_object(path) if path.is_file() else None


# --------------------------------------------------------------------------------- formatting
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(value: float | None, decimals: int = 2) -> str:
    """``decimals`` fixed digits; 3 significant digits for small values; "–" for None."""
    if value is None:
        return DASH
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10.0 ** (1 - decimals):
        return f"{value:#.3g}"
    return f"{value:.{decimals}f}"


def fmt_cell(cell: Mapping[str, Any], decimals: int = 2) -> str:
    if cell.get("value") is None:
        return DASH
    text = fmt(cell["value"], decimals)
    if cell.get("std") is not None:
        places = len(text.partition(".")[2]) if "e" not in text else None
        text += f" ± {cell['std']:.{places}f}" if places is not None else f" ± {fmt(cell['std'], decimals)}"
    return text


def _paper_text(value: Any, decimals: int) -> str:
    if isinstance(value, (list, tuple)):
        return " / ".join(_paper_text(v, decimals) for v in value) + " †"
    return fmt(float(value), decimals) if _finite(value) else DASH


def _scalar(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _run_cell(report: Mapping[str, Any], key: str, percent: bool = False) -> dict[str, Any]:
    """This run's value (and std) of ``key`` in display units, plus which key it came from."""
    scale = 100.0 if percent else 1.0
    value = report.get(key)
    std = report.get(f"{key}_std")
    seeds = report.get("seed_count")
    if isinstance(seeds, int) and seeds < 2:
        std = None  # one seed: a std of 0 is no measure of noise, so none is shown or compared
    return {
        "value": float(value) * scale if _finite(value) else None,
        "std": float(std) * scale if value is not None and _finite(std) else None,
        "key": key if key in report else None,
    }


def _get(mapping: Any, *path: str) -> Any:
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


def _within_noise(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    if None in (a.get("value"), b.get("value"), a.get("std"), b.get("std")):
        return None
    return abs(a["value"] - b["value"]) <= math.hypot(a["std"], b["std"])


def _compare(metric: Metric, cand: dict, base: dict, paper_cand: Any, paper_base: Any) -> dict[str, Any]:
    p_dir = direction(_scalar(paper_cand), _scalar(paper_base), metric.better)
    r_dir = direction(cand["value"], base["value"], metric.better)
    return {
        "better": metric.better,
        "paper": p_dir,
        "run": r_dir,
        "status": verdict(p_dir, r_dir),
        "within_one_std": _within_noise(cand, base),
    }


# ----------------------------------------------------------------------------------- tables
def _meta(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    def collect(key: str) -> dict[str, Any]:
        return {name: rep[key] for name, rep in reports.items() if rep.get(key) is not None}

    return {
        "dataset": collect("dataset"),
        "num_samples": collect("num_samples"),
        "seed_count": collect("seed_count"),
        "feature_network": collect("feature_network"),
        "missing_reports": [name for name in REPORT_NAMES if not reports.get(name)],
    }


def _generation_table(
    reports: Mapping[str, Mapping[str, Any]],
    rows: tuple[tuple[str, str, Any], ...],
    metrics: tuple[Metric, ...],
    fid_key: Callable[[Mapping[str, Any]], str],
) -> dict[str, Any]:
    """rows: (experiment, label, paper row); the first row is the baseline, the second LZN."""
    table: dict[str, Any] = {"rows": {}, "direction": {}}
    for name, label, paper_row in rows:
        rep = reports.get(name, {})
        cells = {}
        for m in metrics:
            key = fid_key(rep) if m.key == "fid" else m.key
            cells[m.key] = {**_run_cell(rep, key, m.percent), "paper": _scalar(_get(paper_row, m.paper_key))}
        table["rows"][name] = {
            "label": label,
            "feature_network": rep.get("feature_network"),
            "metrics": cells,
        }
    (base, _, _), (cand, _, _) = rows
    for m in metrics:
        b, c = table["rows"][base]["metrics"][m.key], table["rows"][cand]["metrics"][m.key]
        table["direction"][m.key] = _compare(m, c, b, c["paper"], b["paper"])
    networks = {r["feature_network"] for r in table["rows"].values() if r["feature_network"]}
    table["feature_network"] = sorted(networks)
    return table


def _table1(reports, paper) -> dict[str, Any]:
    cifar = _get(paper, "table1_unconditional_generation", "cifar10")
    rows = (("rf", "RF", _get(cifar, "rf")), ("rf_lzn", "RF+LZN", _get(cifar, "rf_lzn")))
    return _generation_table(reports, rows, GEN_METRICS, lambda rep: "fid")


def _table4(reports, paper) -> dict[str, Any]:
    t4 = _get(paper, "table4_cifar10_conditional_generation")
    rows = (
        ("rf_cond", "RF (conditional)", _get(t4, "rf_cond")),
        ("lzn_joint", "RF+LZN joint", _get(t4, "rf_lzn_u20")),
    )
    metrics = (*GEN_METRICS, ACCURACY)
    table = _generation_table(
        reports,
        rows,
        metrics,
        lambda rep: "fid_conditional" if rep.get("fid_conditional") is not None else "fid",
    )
    # Table 4's accuracy is the headline (tuned) one; fall back to the default protocol.
    joint = reports.get("lzn_joint", {})
    acc_key = "accuracy_tuned" if joint.get("accuracy_tuned") is not None else "accuracy_default"
    acc = table["rows"]["lzn_joint"]["metrics"]["accuracy"]
    acc.update(_run_cell(joint, acc_key, percent=True))
    table["rows"]["rf_cond"]["metrics"]["accuracy"].update(value=None, std=None, key=None)
    table["direction"]["accuracy"] = _compare(
        ACCURACY, acc, table["rows"]["rf_cond"]["metrics"]["accuracy"], None, None
    )
    return table


def _table2(reports, paper) -> dict[str, Any]:
    t2 = _get(paper, "table2_imagenet_linear_probe")
    rows = {}
    for name, label, paper_key in (("simclr", "SimCLR", "SimCLR"), ("lzn_repr", "LZN", "LZN")):
        rep = reports.get(name, {})
        rows[name] = {
            "label": label,
            "metrics": {
                m.key: {**_run_cell(rep, m.key, True), "paper": _scalar(_get(t2, paper_key, m.paper_key))}
                for m in (PROBE_TOP1, PROBE_TOP5)
            },
        }
    fig19 = _get(paper, "fig19_feature_ablation") or _FIG19_DEFAULT
    lzn = reports.get("lzn_repr", {})
    ablation_keys = ("probe_top1_anchor", "probe_top1_latent_alpha0", "probe_top1_latent_alpha1")
    ablation = []
    if any(lzn.get(k) is not None for k in ablation_keys):
        for key, label, paper_key in (
            ("probe_top1", "backbone (w/o head)", "backbone"),
            ("probe_top1_anchor", "head output (anchor)", "anchor"),
            ("probe_top1_latent_alpha0", "latent (α = 0)", "latent_alpha0"),
            ("probe_top1_latent_alpha1", "latent (α = 1)", "latent_alpha1"),
        ):
            ablation.append(
                {
                    "feature": paper_key,
                    "label": label,
                    **_run_cell(lzn, key, True),
                    "paper": fig19.get(paper_key),
                }
            )
    return {"rows": rows, "ablation": ablation}


def _fig25_cells(paper) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(default protocol cell: batch 2000, α = 1.0; best cell of the grid) of Fig. 25."""
    grid = _get(paper, "fig25_cifar10_accuracy_grid")
    alphas = _get(grid, "alphas")
    if not isinstance(alphas, list):
        return None, None
    cells = []
    for row, values in grid.items():
        if row.startswith("batch_") and isinstance(values, list):
            batch = int(row.removeprefix("batch_"))
            cells += [{"batch": batch, "alpha": a, "value": v} for a, v in zip(alphas, values) if _finite(v)]
    default = next((c for c in cells if c["batch"] == 2000 and c["alpha"] == 1.0), None)
    best = max(cells, key=lambda c: c["value"], default=None)
    return default, best


def _tuned_setting(joint: Mapping[str, Any]) -> str:
    """"batch 360, α 0.4" of the tuned protocol; α is chosen per seed, so several seeds show their mean."""
    parts = []
    if _finite(joint.get("tuned_batch_size")):
        parts.append(f"batch {joint['tuned_batch_size']:g}")
    alpha, alpha_std = joint.get("tuned_alpha"), joint.get("tuned_alpha_std")
    if _finite(alpha):
        if _finite(alpha_std) and alpha_std > 0 and (joint.get("seed_count") or 1) > 1:
            parts.append(f"α chosen per seed, mean {alpha:.2g}")
        else:
            parts.append(f"α {alpha:g}")
    return ", ".join(parts)


def _table3(reports, paper) -> dict[str, Any]:
    t3 = _get(paper, "table3_cifar10_classification_accuracy") or {}
    default_cell, best_cell = _fig25_cells(paper)
    joint, sup = reports.get("lzn_joint", {}), reports.get("supervised", {})
    tuned_setting = _tuned_setting(joint)
    best_ref = "Table 3 RF+LZN"
    if best_cell:
        best_ref += f" (best Fig. 25 cell: batch {best_cell['batch']}, α {best_cell['alpha']})"
    rows = {
        "supervised": {
            "label": "Supervised (same encoder, cross-entropy)",
            "protocol": DASH,
            **_run_cell(sup, "accuracy", True),
            "paper": _scalar(t3.get("ResNet18")),
            "paper_reference": "ResNet18 (Table 3)",
        },
        "lzn_joint_default": {
            "label": "RF+LZN joint",
            "protocol": "default (α = 1)",
            **_run_cell(joint, "accuracy_default", True),
            "paper": _scalar(_get(default_cell, "value")),
            "paper_reference": "Fig. 25, batch 2000, α 1.0",
        },
        "lzn_joint_tuned": {
            "label": "RF+LZN joint",
            "protocol": f"tuned ({tuned_setting})" if tuned_setting else "tuned",
            **_run_cell(joint, "accuracy_tuned", True),
            "paper": _scalar(t3.get("RF_LZN")),
            "paper_reference": best_ref,
        },
    }
    return {"rows": rows}


# ------------------------------------------------------------------------------------ claims
def _claim(
    cid: str,
    text: str,
    metric: Metric,
    cand: dict,
    base: dict,
    p_cand: Any,
    p_base: Any,
    names: tuple[str, str],
    relation: str = "better",
) -> dict[str, Any]:
    """A claim "cand is better than base" (relation "better") or "cand is not worse" ("not_worse")."""
    r_dir = direction(cand.get("value"), base.get("value"), metric.better)
    p_dir = direction(_scalar(p_cand), _scalar(p_base), metric.better)
    if r_dir is None:
        status = NOT_MEASURED
    elif relation == "not_worse":
        status = HOLDS if r_dir in ("better", "tie") else DOES_NOT_HOLD
    else:
        status = HOLDS if r_dir == "better" else DOES_NOT_HOLD
    return {
        "id": cid,
        "claim": text,
        "metric": metric.key,
        "status": status,
        "within_one_std": _within_noise(cand, base),
        "run": {names[0]: cand.get("value"), names[1]: base.get("value")},
        "run_keys": {names[0]: cand.get("key"), names[1]: base.get("key")},
        "paper": {names[0]: _scalar(p_cand), names[1]: _scalar(p_base)},
        "paper_direction": p_dir,
        "decimals": metric.decimals,
        "paper_decimals": metric.paper_decimals,
    }


def _claims(t1, t2, t3, t4) -> list[dict[str, Any]]:
    fid, recon = GEN_METRICS[0], GEN_METRICS[4]
    r1 = t1["rows"]
    c = [
        _claim(
            "t1_fid",
            "RF+LZN has a better (lower) FID than RF (Table 1)",
            fid,
            r1["rf_lzn"]["metrics"]["fid"],
            r1["rf"]["metrics"]["fid"],
            r1["rf_lzn"]["metrics"]["fid"]["paper"],
            r1["rf"]["metrics"]["fid"]["paper"],
            ("RF+LZN", "RF"),
        ),
        _claim(
            "t1_recon",
            "RF+LZN reconstructs better (lower error) than RF (Table 1)",
            recon,
            r1["rf_lzn"]["metrics"]["recon_error"],
            r1["rf"]["metrics"]["recon_error"],
            r1["rf_lzn"]["metrics"]["recon_error"]["paper"],
            r1["rf"]["metrics"]["recon_error"]["paper"],
            ("RF+LZN", "RF"),
        ),
    ]
    r2 = t2["rows"]
    c.append(
        _claim(
            "t2_probe",
            "LZN matches or beats SimCLR on the linear probe, top-1 (Table 2)",
            PROBE_TOP1,
            r2["lzn_repr"]["metrics"]["probe_top1"],
            r2["simclr"]["metrics"]["probe_top1"],
            r2["lzn_repr"]["metrics"]["probe_top1"]["paper"],
            r2["simclr"]["metrics"]["probe_top1"]["paper"],
            ("LZN", "SimCLR"),
            relation="not_worse",
        )
    )
    r3 = t3["rows"]
    joint = r3["lzn_joint_tuned"] if r3["lzn_joint_tuned"]["value"] is not None else r3["lzn_joint_default"]
    paper_joint = (
        r3["lzn_joint_tuned"]["paper"] if joint is r3["lzn_joint_tuned"] else r3["lzn_joint_default"]["paper"]
    )
    acc = Metric("accuracy", "accuracy %", "higher", percent=True)
    c.append(
        _claim(
            "t3_accuracy",
            "RF+LZN joint classifies at least as accurately as a supervised classifier (Table 3)",
            acc,
            joint,
            r3["supervised"],
            paper_joint,
            r3["supervised"]["paper"],
            ("RF+LZN joint", "supervised"),
            relation="not_worse",
        )
    )
    r4 = t4["rows"]
    c.append(
        _claim(
            "t4_fid",
            "RF+LZN joint has a better (lower) conditional FID than conditional RF (Table 4)",
            fid,
            r4["lzn_joint"]["metrics"]["fid"],
            r4["rf_cond"]["metrics"]["fid"],
            r4["lzn_joint"]["metrics"]["fid"]["paper"],
            r4["rf_cond"]["metrics"]["fid"]["paper"],
            ("RF+LZN joint", "RF (conditional)"),
        )
    )
    # Fig. 19 ranking: the backbone is the best feature and the alpha = 1 latent the worst.
    abl = {row["feature"]: row for row in t2["ablation"]}
    values = [abl[k]["value"] for k in ("backbone", "anchor", "latent_alpha0", "latent_alpha1") if k in abl]
    measured = bool(values) and all(v is not None for v in values)
    status = NOT_MEASURED
    if measured:
        best, worst = abl["backbone"]["value"], abl["latent_alpha1"]["value"]
        status = HOLDS if best == max(values) and worst == min(values) else DOES_NOT_HOLD
    c.append(
        {
            "id": "fig19_ranking",
            "claim": "Probe features: backbone best, α = 1 latent worst (Fig. 19)",
            "metric": "probe_top1",
            "status": status,
            "within_one_std": None,
            "run": {row["feature"]: row["value"] for row in t2["ablation"]},
            "run_keys": {row["feature"]: row["key"] for row in t2["ablation"]},
            "paper": {row["feature"]: row["paper"] for row in t2["ablation"]},
            "paper_direction": None,
            "labels": {row["feature"]: row["label"] for row in t2["ablation"]},
            "decimals": 2,
            "paper_decimals": 1,
        }
    )
    return c


# ----------------------------------------------------------------------------------- markdown
def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _describe(values: Mapping[str, Any]) -> str:
    """One value when all reports agree, else "v1 (a, b); v2 (c)"; "–" when none has it."""
    if not values:
        return DASH
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(str(value), []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{v} ({', '.join(names)})" for v, names in groups.items())


_NOT_COMPARABLE = (
    "Numbers are not comparable to the paper's Inception-based values when the feature network "
    "differs; compare directions, not values."
)

_DIRECTION_NOTE = (
    "direction holds?: {lzn} vs {base} moves the same way as in the paper's row pair "
    "(where the paper shows a tie, {lzn} must not be worse)."
)


def _feature_note(table: Mapping[str, Any], names: tuple[str, str]) -> list[str]:
    nets = table["feature_network"]
    shown = ", ".join(f"`{n}`" for n in nets) if nets else DASH
    lines = [f"Feature network of this run: {shown} (paper: Inception-v3, CM evaluator). {_NOT_COMPARABLE}"]
    if len(nets) > 1:
        lines.append(
            f"> Warning: {names[0]} and {names[1]} were evaluated with different feature networks; "
            "their comparison is not meaningful."
        )
    return lines


def _generation_md(table: Mapping[str, Any], metrics: tuple[Metric, ...]) -> list[str]:
    header = ["algo"]
    for m in metrics:
        header += [f"{m.label}{m.arrow} (run)", f"{m.label}{m.arrow} (paper)"]
    header.append("direction holds?")
    rows = []
    names = list(table["rows"])
    for i, name in enumerate(names):
        row = table["rows"][name]
        cells = [row["label"]]
        for m in metrics:
            cell = row["metrics"][m.key]
            cells += [fmt_cell(cell, m.decimals), fmt(cell["paper"], m.paper_decimals)]
        if i == 0:
            cells.append("baseline")
        else:
            cells.append(
                "; ".join(
                    f"{m.label.removesuffix(' %')}: {table['direction'][m.key]['status']}"
                    for m in metrics
                    if table["direction"][m.key]["paper"] is not None
                )
            )
        rows.append(cells)
    return _md_table(header, rows)


def _claim_md(claim: Mapping[str, Any]) -> str:
    labels = claim.get("labels", {})

    def pair(values: Mapping[str, Any], d: int) -> str:
        if claim["id"] == "fig19_ranking":
            shown = (_paper_text(v, d) if isinstance(v, list) else fmt(v, d) for v in values.values())
            return ", ".join(f"{labels.get(k, k)}: {v}" for k, v in zip(values, shown)) or DASH
        a, b = values.values()
        return f"{fmt(a, d)} vs {fmt(b, d)}"

    who = f" ({' vs '.join(claim['run'])})" if claim["id"] != "fig19_ranking" else ""
    noise = " (difference within one std)" if claim["within_one_std"] else ""
    return (
        f"- **{claim['status']}**{noise} — {claim['claim']}: this run {pair(claim['run'], claim['decimals'])}{who}; "
        f"paper {pair(claim['paper'], claim['paper_decimals'])}."
    )


def render_markdown(result: Mapping[str, Any]) -> str:
    """The markdown of ``paper_tables.md`` from the structure :func:`build_report` returns."""
    meta, t1, t2, t3, t4 = (result[k] for k in ("meta", "table1", "table2", "table3", "table4"))
    lines = [
        "# LZN paper tables — this run vs the paper",
        "",
        f"- Dataset: {_describe(meta['dataset'])} (paper: CIFAR10 32² for Tables 1, 3, 4; ImageNet for Table 2)",
        f"- Generated samples per evaluation: {_describe(meta['num_samples'])} (paper: 50k, training-set reference)",
        f"- Seeds per experiment: {_describe(meta['seed_count'])}; values with ± are mean ± std over seeds",
        "- Accuracies and probe top-k in percent (reports store fractions); precision/recall as fractions",
    ]
    if meta["missing_reports"]:
        lines.append(
            f"- Missing reports (shown as {DASH}): {', '.join(f'{n}.json' for n in meta['missing_reports'])}"
        )

    lines += ["", "## Table 1 — unconditional generation (paper: CIFAR10)", ""]
    lines += _feature_note(t1, ("RF", "RF+LZN"))
    lines += [""] + _generation_md(t1, GEN_METRICS)
    lines += ["", _DIRECTION_NOTE.format(lzn="RF+LZN", base="RF")]

    lines += ["", "## Table 2 — linear probe (paper: ImageNet, ResNet-50)", ""]
    rows = [
        [r["label"]]
        + [
            x
            for m in (PROBE_TOP1, PROBE_TOP5)
            for x in (
                fmt_cell(r["metrics"][m.key], m.decimals),
                fmt(r["metrics"][m.key]["paper"], m.paper_decimals),
            )
        ]
        for r in t2["rows"].values()
    ]
    lines += _md_table(
        ["method", "top-1 % (run)", "top-1 % (paper)", "top-5 % (run)", "top-5 % (paper)"], rows
    )
    if t2["ablation"]:
        lines += [
            "",
            "Feature-choice ablation of LZN (paper Fig. 19: shorter run, probe trained without augmentation):",
            "",
        ]
        rows = [
            [r["label"], fmt_cell(r, 2), _paper_text(r["paper"], 1) if r["paper"] is not None else DASH]
            for r in t2["ablation"]
        ]
        lines += _md_table(["LZN feature", "top-1 % (run)", "top-1 % (paper, Fig. 19)"], rows)
        if any(isinstance(r["paper"], list) for r in t2["ablation"]):
            lines += ["", "† the paper's figure does not say which of the two values belongs to which bar."]

    lines += ["", "## Table 3 — classification accuracy (paper: CIFAR10)", ""]
    rows = [
        [r["label"], r["protocol"], fmt_cell(r, 2), fmt(r["paper"], 2), r["paper_reference"]]
        for r in t3["rows"].values()
    ]
    lines += _md_table(
        ["model", "protocol", "accuracy % (run)", "accuracy % (paper)", "paper reference"], rows
    )

    lines += ["", "## Table 4 — conditional generation (paper: CIFAR10, RF+LZN u = 20)", ""]
    lines += _feature_note(t4, ("RF (conditional)", "RF+LZN joint"))
    fid_key = (
        t4["rows"]["lzn_joint"]["metrics"]["fid"]["key"]
        or t4["rows"]["rf_cond"]["metrics"]["fid"]["key"]
        or "fid_conditional"
    )
    acc_key = t4["rows"]["lzn_joint"]["metrics"]["accuracy"]["key"] or "accuracy_tuned"
    lines.append(f"FID from `{fid_key}`; accuracy from `{acc_key}`.")
    lines += [""] + _generation_md(t4, (*GEN_METRICS, ACCURACY))
    lines += ["", _DIRECTION_NOTE.format(lzn="RF+LZN joint", base="RF (conditional)")]

    lines += ["", "## Claims", ""]
    lines += [_claim_md(c) for c in result["claims"]]

    if result.get("sweep") is not None:
        lines += ["", "## Sweep (reports/sweep.json)", ""]
        flat = {
            k: f"[{len(v)} entries]" if isinstance(v, list) else v
            for k, v in flatten(result["sweep"]).items()
        }
        lines += _md_table(["entry", "value"], [[k, str(v)] for k, v in list(flat.items())[:40]])
        if len(flat) > 40:
            lines.append(f"\n({len(flat) - 40} more entries in reports/sweep.json)")

    lines += [
        "",
        "Generated by `stages/report.py` from `reports/*.json` and `pipeline/report/paper_results.yaml`.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- public
def build_report(reports_dir: Path, paper: dict | None = None) -> tuple[str, dict]:
    """Read ``reports_dir`` and return (markdown, machine-readable comparison)."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        raise FileNotFoundError(f"{reports_dir}: reports folder not found")
    paper = load_paper_results() if paper is None else paper
    reports = read_reports(reports_dir)
    t1, t2, t3, t4 = (
        _table1(reports, paper),
        _table2(reports, paper),
        _table3(reports, paper),
        _table4(reports, paper),
    )
    result = {
        "units": {
            "accuracy": "percent",
            "probe": "percent",
            "precision_recall": "fraction",
            "fid_is_recon": "as reported",
        },
        "meta": _meta(reports),
        "table1": t1,
        "table2": t2,
        "table3": t3,
        "table4": t4,
        "claims": _claims(t1, t2, t3, t4),
        "sweep": read_sweep(reports_dir),
    }
    return render_markdown(result), result


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(reports_dir: Path, out_md: Path) -> Path:
    """Write ``out_md`` and, beside it, the same comparison as ``<stem>.json``; return ``out_md``."""
    out_md = Path(out_md)
    markdown, result = build_report(Path(reports_dir))
    _write_atomic(out_md.with_suffix(".json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(out_md, markdown)
    return out_md
