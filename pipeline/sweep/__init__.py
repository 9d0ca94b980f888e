"""Hyperparameter sweeps (the frozen ``sweep`` stage): Ray Tune over a params search space, ASHA early
stopping, each trial a Ray Train run and an MLflow child run of the sweep's parent run.

Modules, in the order a sweep uses them:

- :mod:`pipeline.sweep.plan`: params -> a validated :class:`~pipeline.sweep.plan.SweepPlan` (every check
  before Ray starts, the deterministic sweep name) and the Tune search space.
- :mod:`pipeline.sweep.run`: running Ray Tune: trials at once, the function trainable (one Ray Train run
  per trial), the tuner (fresh or restored) with its ASHA scheduler.
- :mod:`pipeline.sweep.results`: the trials on disk -> the ``reports/sweep.json`` record and the best
  trial; writing ``reports/sweep.json``, ``reports/sweep_best.yaml`` and ``reports/sweep_<key>.png``.
- :mod:`pipeline.sweep.mlflow_runs`: the parent run of a sweep and the child run of each trial.
- :mod:`pipeline.sweep.hooks`: the one seam for tests, a function called when a trial completes.
"""
