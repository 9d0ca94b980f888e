"""Sweep plans (pipeline.sweep.plan): every check of the search space and the metric before any trial,
also through the stage (one line, exit 2, before Ray starts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from sweep_support import sweep_raw

from pipeline.errors import ParamsError
from pipeline.params import validate_params
from pipeline.sweep.plan import candidate_values, validate_sweep
from pipeline.train.online_eval import ONLINE_METRICS, TRAINING_METRICS


def _validate(raw: dict, root: Path, experiment: str | None = None):
    return validate_sweep(validate_params(raw), raw, root, experiment)


def test_unknown_parameter_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.latent_dimm": {"choice": [4, 8]}}})
    with pytest.raises(ParamsError, match=r"^sweep\.space\.train\.lzn_repr\.latent_dimm: unknown parameter"):
        _validate(raw, tmp_path)


def test_out_of_range_value_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.align.cutoff": {"uniform": [0.0, 1.5]}}})
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.lzn_repr\.align\.cutoff=.*train\.lzn_repr\.align\.cutoff"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.batch_size": {"choice": [16, 15]}}})
    with pytest.raises(ParamsError, match=r"batch_size=15.*not divisible by train.workers=2"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.latent_flow.solver": {"choice": ["euler", "rk4"]}}})
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.lzn_repr\.latent_flow\.solver='rk4'"):
        _validate(raw, tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"choice": []}, "empty choice"),
        ({"uniform": [0.5, 0.5]}, r"empty range \[0.5, 0.5\]"),
        ({"loguniform": [1.0e-2, 1.0e-3]}, "empty range"),
        ({"randint": [4, 2]}, "empty range"),
        ({"normal": [0.0, 1.0]}, "unknown distribution 'normal'"),
        ({"uniform": ["1e-3", 1.0]}, "two numbers"),
        ({"choice": [1], "uniform": [0, 1]}, "exactly one distribution"),
    ],
)
def test_bad_distribution_is_refused(spec, message):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.align.cutoff": spec}})
    with pytest.raises(ParamsError, match=rf"sweep\.space\.train\.lzn_repr\.align\.cutoff: .*{message}"):
        validate_params(raw)


def test_unknown_or_unavailable_metric_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.metric": "fid_score"})
    with pytest.raises(ParamsError, match=r"^sweep\.metric: 'fid_score' is not reported by experiment 'lzn_repr'"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.metric": "rf_loss"})  # another experiment's metric
    with pytest.raises(ParamsError, match="not reported"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.metric": "fid", "sweep.space": {"train.rf.lr.decoder": {"loguniform": [1.0e-4, 1.0e-3]}}})
    with pytest.raises(ParamsError, match=r"sweep\.metric: 'fid' needs the reference classifier .*models/refnet/model\.pt"):
        _validate(raw, tmp_path, experiment="rf")


def test_other_checks(tmp_path):
    with pytest.raises(ParamsError, match=r"^sweep\.space: empty"):
        _validate(sweep_raw(**{"sweep.space": {}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.eval_every: cannot be searched"):
        _validate(sweep_raw(**{"sweep.space": {"train.eval_every": {"choice": [1, 2]}}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.rf\.lr\.decoder: belongs to experiment 'rf'"):
        _validate(sweep_raw(**{"sweep.space": {"train.rf.lr.decoder": {"choice": [1.0e-3]}}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.grace_period: 5 exceeds the 4 evaluations"):
        _validate(sweep_raw(**{"sweep.grace_period": 5}), tmp_path)
    with pytest.raises(ParamsError, match="unknown experiment 'nope'"):
        _validate(sweep_raw(), tmp_path, experiment="nope")
    cfg, trial_raw, max_t = _validate(sweep_raw(), tmp_path)
    assert max_t == 4 and trial_raw["train"]["eval_every"] == trial_raw["train"]["log_every"] == 2
    assert candidate_values({"randint": [2, 5]}) == [2, 4]
    assert candidate_values({"uniform": [0.0, 1.0]})[1] < 1.0
    assert set(ONLINE_METRICS["lzn_joint"]) == {"probe_top1", "accuracy", "fid"}
    assert "align_loss" in TRAINING_METRICS["lzn_repr"] and "align_loss" not in TRAINING_METRICS["simclr"]


def test_stage_bad_sweep_fails_before_ray(project):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.nope": {"choice": [1]}}})
    (project / "params.yaml").write_text(json.dumps(raw))
    r = subprocess.run([sys.executable, str(REPO / "stages" / "sweep.py"), "--root", str(project)],
                       cwd=project, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "sweep.space.train.lzn_repr.nope: unknown parameter" in r.stderr
    assert "Traceback" not in r.stderr
