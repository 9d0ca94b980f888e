"""From params to a sweep plan: the checks before any trial, the search space, the typed :class:`SweepPlan`.

``params.yaml``'s ``sweep`` section names the experiment, the metric, the search ``space`` (dotted params
keys -> ``choice`` / ``uniform`` / ``loguniform`` / ``randint``) and the ASHA settings.

Checks before any trial starts (:func:`validate_sweep`, one-line :class:`ParamsError` naming the key):
every key of the space exists in the params and every value it can take validates (all ``choice``
values, both ends of a range); no key belongs to another experiment or to what the sweep itself
controls; the metric is reported by the experiment; ``fid`` needs ``models/refnet``. :func:`plan_sweep`
adds the data check (missing shards: :class:`pipeline.errors.ShardsMissingError`, from
:func:`pipeline.train.driver.plan_training`).

Naming: the Tune experiment is ``<root>/<train.storage>/sweeps/<name>`` with a deterministic ``name``
(``sweep-<experiment>-<hash of the sweep config, the other params, the data and the code>``); each
trial's Train run lives under ``<that>/train_runs``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ParamsError
from pipeline.params import EXPERIMENTS, Params, SweepConfig, apply_overrides, config_hash, validate_params

__all__ = [
    "RESERVED_KEYS",
    "SweepPlan",
    "candidate_values",
    "plain",
    "plan_sweep",
    "tune_space",
    "validate_sweep",
]

RESERVED_KEYS: tuple[str, ...] = (
    "sweep",
    "seeds",
    "train.eval_every",
    "train.log_every",
    "train.checkpoint_every",
    "train.storage",
    "train.workers",
    "train.cpus_per_worker",
    "train.use_gpu",
)
"""Keys a sweep may not search over: it sets them itself, or they size the trials' resources."""

_HASH_EXCLUDED = ("max_concurrent_trials", "driver_cpus", "cpus_per_worker")  # resources, not results


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A validated sweep, resolved before Ray starts."""

    root: Path
    config: SweepConfig  # ``sweep`` with the experiment override applied
    params_raw: dict[str, Any]  # the params as given (base of ``sweep_best.yaml``)
    trial_raw: dict[str, Any]  # the params every trial starts from (evaluation cadence, storage set)
    name: str
    storage: Path  # <root>/<train.storage>/sweeps
    max_t: int  # evaluations (Tune iterations) of the longest trial

    @property
    def experiment(self) -> str:
        return self.config.experiment

    @property
    def path(self) -> Path:
        """The Tune experiment directory."""
        return self.storage / self.name

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.config.space)


# ------------------------------------------------------------------------------------ validation
def candidate_values(spec: Mapping[str, list[Any]]) -> list[Any]:
    """Values of a distribution that must all be valid: every choice, or both ends of a range."""
    dist, values = next(iter(spec.items()))
    if dist == "choice":
        return list(values)
    lo, hi = values
    if dist == "randint":
        return [lo, hi - 1]  # hi is exclusive
    return [lo, math.nextafter(hi, lo)]  # uniform/loguniform sample [lo, hi)


def _set_leaf(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _evaluations(params: Params, experiment: str, eval_every: int) -> int:
    return math.ceil(params.experiment(experiment).total_iterations / eval_every)


def validate_sweep(
    params: Params, raw: Mapping[str, Any], root: Path, experiment: str | None = None
) -> tuple[SweepConfig, dict[str, Any], int]:
    """Check the sweep before any work; return ``(config, trial params, max evaluations per trial)``.

    Raises :class:`ParamsError` (one line, naming the key) for an empty space, a key that is unknown,
    reserved or another experiment's, a value that does not validate (``train.<e>.batch_size`` must
    also divide by ``train.workers``), a metric the experiment does not report, ``fid`` without the
    reference classifier, or a ``grace_period`` beyond the number of evaluations.
    """
    from pipeline.evaluate.refnet import refnet_path
    from pipeline.train.online_eval import REFNET_METRICS, reported_metrics

    cfg = params.sweep
    if experiment is not None:
        params.experiment(experiment)  # unknown name: ParamsError
        cfg = cfg.model_copy(update={"experiment": experiment})
    exp = cfg.experiment
    if not cfg.space:
        raise ParamsError("sweep.space: empty; list at least one parameter to search over")
    reported = reported_metrics(exp)
    if cfg.metric not in reported:
        raise ParamsError(
            f"sweep.metric: {cfg.metric!r} is not reported by experiment {exp!r}; it reports {', '.join(reported)}"
        )
    if cfg.metric in REFNET_METRICS and not refnet_path(root).is_file():
        raise ParamsError(
            f"sweep.metric: {cfg.metric!r} needs the reference classifier {refnet_path(root)}; "
            "run `dvc repro refnet` (or `python stages/refnet.py`) first"
        )

    trial_raw = json.loads(json.dumps(dict(raw)))  # deep copy of plain data
    for key in ("eval_every", "log_every", "checkpoint_every"):  # every report carries the online metrics
        _set_leaf(trial_raw, f"train.{key}", cfg.eval_every)
    if cfg.cpus_per_worker is not None:
        _set_leaf(trial_raw, "train.cpus_per_worker", cfg.cpus_per_worker)
    base = validate_params(trial_raw, "params (sweep trial settings)")
    workers = base.train.workers
    max_t = _evaluations(base, exp, cfg.eval_every)
    for key, spec in cfg.space.items():
        where = f"sweep.space.{key}"
        if any(key == r or key.startswith(r + ".") for r in RESERVED_KEYS):
            raise ParamsError(f"{where}: cannot be searched (the sweep sets it or it sizes the trials' resources)")
        parts = key.split(".")
        if len(parts) > 1 and parts[0] == "train" and parts[1] in EXPERIMENTS and parts[1] != exp:
            raise ParamsError(f"{where}: belongs to experiment {parts[1]!r}, but the sweep trains {exp!r}")
        for value in candidate_values(spec):
            try:
                trial = apply_overrides(trial_raw, {key: value})
            except ParamsError as err:
                raise ParamsError(f"{where}: {str(err).split(': ', 1)[-1]}") from None
            candidate = validate_params(trial, f"{where}={value!r}")
            batch = candidate.experiment(exp).batch_size
            if batch % workers:
                raise ParamsError(
                    f"{where}={value!r}: train.{exp}.batch_size {batch} is not divisible by train.workers={workers}"
                )
            max_t = max(max_t, _evaluations(candidate, exp, cfg.eval_every))
    if cfg.grace_period > max_t:
        raise ParamsError(
            f"sweep.grace_period: {cfg.grace_period} exceeds the {max_t} evaluations of a trial "
            f"(train.{exp}.iterations / sweep.eval_every)"
        )
    return cfg, trial_raw, max_t


def plan_sweep(params: Params, raw: Mapping[str, Any], root: Path, experiment: str | None = None) -> SweepPlan:
    """Validate the sweep and the data (shards) and name it; no Ray yet."""
    from pipeline.train.driver import plan_training

    root = Path(root).resolve()
    cfg, trial_raw, max_t = validate_sweep(params, raw, root, experiment)
    base = plan_training(validate_params(trial_raw), trial_raw, cfg.experiment, cfg.seed, root)
    identity = {
        "sweep": cfg.model_dump(mode="json", exclude=set(_HASH_EXCLUDED)),
        "params": {k: v for k, v in raw.items() if k != "sweep"},
        "data": base.run_config["data"],
        "code": base.run_config["code"],
    }
    name = f"sweep-{cfg.experiment}-{config_hash(identity)}"
    storage = base.storage / "sweeps"
    _set_leaf(trial_raw, "train.storage", str(storage / name / "train_runs"))
    return SweepPlan(root, cfg, json.loads(json.dumps(dict(raw))), trial_raw, name, storage, max_t)


# ------------------------------------------------------------------------------------ search space
def tune_space(config: SweepConfig) -> dict[str, Any]:
    """The Tune ``param_space``: one distribution per dotted key."""
    from ray import tune

    make = {"choice": tune.choice, "uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    out = {}
    for key, spec in config.space.items():
        dist, values = next(iter(spec.items()))
        out[key] = make[dist](values) if dist == "choice" else make[dist](*values)
    return out


def plain(value: Any) -> Any:
    """numpy scalars (Tune's samples) -> Python values, recursively."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
