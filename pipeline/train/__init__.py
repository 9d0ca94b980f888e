"""Training (the ``train`` stage): one experiment, every seed, as a Ray Train V2 ``TorchTrainer`` run.

Modules, from the stage down to one step:

- :mod:`pipeline.train.driver`: the driver process: params -> a validated
  :class:`~pipeline.train.driver.TrainPlan` (every check before Ray starts, the deterministic run
  name, the code hash), the ``TorchTrainer`` fit, the export of ``models/<experiment>/seed_<s>/``.
- :mod:`pipeline.train.worker`: the per-worker training loop (``train_loop_per_worker``), read top to
  bottom, and :class:`~pipeline.train.worker.WorkerConfig`, the typed config every rank receives.
- :mod:`pipeline.train.state`: :class:`~pipeline.train.state.TrainingState` (modules, EMA, optimizer,
  scheduler, step; one optimisation step) and its checkpoints, with the config-mismatch check.
- :mod:`pipeline.train.online_eval`: quick probe / accuracy / FID on the EMA weights every
  ``train.eval_every`` steps (rank 0), and the metric names a run reports (a sweep ranks on them).
- :mod:`pipeline.train.faults`: the one seam for tests, a failure injected at a step.
"""
