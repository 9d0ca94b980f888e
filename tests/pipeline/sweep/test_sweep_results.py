"""Sweep results (pipeline.sweep.results) without Ray: the reports written from a summary, atomically."""

from __future__ import annotations

import json

import pytest
import yaml
from sweep_support import sweep_raw

from pipeline.errors import SweepFailedError, UserError
from pipeline.params import validate_params
from pipeline.sweep.plan import SweepPlan
from pipeline.sweep.results import best_params, plot_name, write_reports

KEY = "train.lzn_repr.lr.encoder"


def _plan(tmp_path) -> SweepPlan:
    raw = sweep_raw()
    cfg = validate_params(raw).sweep
    return SweepPlan(tmp_path, cfg, raw, raw, "sweep-lzn_repr-test", tmp_path / "ray_results" / "sweeps", 4)


def _summary(best: bool = True) -> dict:
    trials = [
        {"trial_id": f"t{i}", "status": "TERMINATED", "overrides": {KEY: lr}, "final": lr, "best": lr,
         "steps": steps, "planned_steps": 8, "evaluations": steps // 2, "stopped_early": steps < 8,
         "curve": [{"step": s, "lr_encoder": lr} for s in range(2, steps + 1, 2)]}
        for i, (lr, steps) in enumerate([(1.0e-3, 8), (1.0e-5, 2)])
    ]
    return {
        "sweep": "sweep-lzn_repr-test", "experiment": "lzn_repr", "metric": "lr_encoder", "mode": "max",
        "num_samples": 2, "complete": True, "stopped_early": 1, "errors": 0, "trials": trials,
        "best": {"trial_id": "t0", "overrides": {KEY: 1.0e-3}, "lr_encoder": 1.0e-3} if best else None,
    }


def test_reports_are_written_from_the_summary(tmp_path):
    plan, summary = _plan(tmp_path), _summary()
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "sweep_train.old_key.png").write_bytes(b"stale")
    paths = write_reports(plan, summary, reports)
    assert [p.name for p in paths] == ["sweep.json", "sweep_best.yaml", plot_name(KEY)]
    assert (reports / "sweep.json").read_text() == json.dumps(summary, indent=2, sort_keys=False) + "\n"
    text = (reports / "sweep_best.yaml").read_text()
    assert text.startswith("# Best params of sweep-lzn_repr-test: trial t0, lr_encoder = 0.001 (max).\n")
    best = validate_params(yaml.safe_load(text), "sweep_best.yaml")
    assert best.train.lzn_repr.lr["encoder"] == pytest.approx(1.0e-3)
    assert (reports / plot_name(KEY)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (reports / "sweep_train.old_key.png").exists()  # a key no longer searched
    assert sorted(p.name for p in reports.iterdir()) == sorted(p.name for p in paths)  # no temporary files


def test_no_best_trial(tmp_path):
    plan, summary = _plan(tmp_path), _summary(best=False)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "sweep_best.yaml").write_text("stale: true\n")
    paths = write_reports(plan, summary, reports)
    assert [p.name for p in paths] == ["sweep.json", plot_name(KEY)]
    assert not (reports / "sweep_best.yaml").exists()  # no stale best params of an older sweep
    with pytest.raises(SweepFailedError, match=r"^sweep sweep-lzn_repr-test: no trial reported 'lr_encoder'"):
        best_params(plan, summary)
    assert issubclass(SweepFailedError, UserError)
