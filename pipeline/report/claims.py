"""The paper's claims, checked on this run's tables: does each headline comparison come out as published?

Each claim compares an LZN variant with its baseline on one metric of the tables of
:mod:`pipeline.report.tables` (Tables 1-4 and the Fig. 19 feature ranking). Unlike a table's
"direction holds?" (:func:`pipeline.report.compare.verdict`, which follows the paper's row pair),
a claim states the relation itself: "better" (strictly) or "not worse" (better or tied). Its
``status`` is ``holds``, ``does not hold`` or ``not measured`` (a value missing); ``within_one_std``
says whether the difference is within the seeds' noise.
"""

from __future__ import annotations

from typing import Any

from pipeline.report.compare import (
    DOES_NOT_HOLD,
    GEN_METRICS,
    HOLDS,
    NOT_MEASURED,
    PROBE_TOP1,
    Metric,
    direction,
    scalar,
    within_noise,
)

__all__ = ["paper_claims"]


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
    p_dir = direction(scalar(p_cand), scalar(p_base), metric.better)
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
        "within_one_std": within_noise(cand, base),
        "run": {names[0]: cand.get("value"), names[1]: base.get("value")},
        "run_keys": {names[0]: cand.get("key"), names[1]: base.get("key")},
        "paper": {names[0]: scalar(p_cand), names[1]: scalar(p_base)},
        "paper_direction": p_dir,
        "decimals": metric.decimals,
        "paper_decimals": metric.paper_decimals,
    }


def paper_claims(t1, t2, t3, t4) -> list[dict[str, Any]]:
    """The claims of Tables 1-4 and Fig. 19, in the order ``paper_tables.md`` lists them."""
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
