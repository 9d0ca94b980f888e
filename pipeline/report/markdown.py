"""``reports/paper_tables.md``: the tables of :mod:`pipeline.report.tables` and the claims, as markdown.

Units. Accuracies and linear-probe top-k, stored as fractions, are shown in **percent** (2
decimals; the tables already hold them so), the unit the paper prints. Precision and recall stay
fractions, as in the paper. FID, IS and reconstruction error are printed with 2 decimals (3
significant digits below 0.1). Values averaged over seeds print as ``mean ± std``; a missing value
as "–".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipeline.params import flatten
from pipeline.report.compare import ACCURACY, DASH, GEN_METRICS, PROBE_TOP1, PROBE_TOP5, Metric, finite

__all__ = ["fmt", "fmt_cell", "render_markdown"]


# --------------------------------------------------------------------------------- formatting
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
    """A cell's value as :func:`fmt` prints it, with `` ± std`` at the value's precision; "–" for None."""
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
    return fmt(float(value), decimals) if finite(value) else DASH


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
    """The markdown of ``paper_tables.md`` from the structure that
    :func:`~pipeline.report.tables.build_paper_tables` returns."""
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
