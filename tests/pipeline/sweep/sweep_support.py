"""Shared by the sweep tests: tiny lzn_repr sweep params."""

from __future__ import annotations

from conftest import tiny_params_raw

SPACE = {"train.lzn_repr.lr.encoder": {"loguniform": [1.0e-6, 1.0e-2]}}


def sweep_raw(**extra) -> dict:
    """Tiny lzn_repr trials: 8 steps, an evaluation (= a Tune iteration) every 2 steps, one trial at a time.

    The metric is the reported learning rate, so that which trials ASHA stops is decided by the sampled
    values alone (trials with a smaller rate than the running median at a rung are "clearly worse")."""
    over = {
        "sweep.experiment": "lzn_repr",
        "sweep.num_samples": 4,
        "sweep.eval_every": 2,
        "sweep.metric": "lr_encoder",
        "sweep.mode": "max",
        "sweep.max_concurrent_trials": 1,
        "sweep.grace_period": 1,
        "sweep.reduction_factor": 2,
        "sweep.cpus_per_worker": 0.5,
        "sweep.seed": 0,
        "sweep.space": SPACE,
    }
    over.update(extra)
    return tiny_params_raw(iterations=8, **over)
