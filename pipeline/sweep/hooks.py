"""The sweep's one seam for tests: a function called in the driver each time a trial completes.

Production never installs one. The sweep calls :func:`trial_completed` in one place (the Tune callback
of :func:`pipeline.sweep.run.run_sweep`); it does nothing unless a caller has installed a hook for the
duration of a ``with on_trial_complete(hook):`` block. The tests install one that interrupts the Tune
run as Ctrl+C does, to check that running the sweep again resumes it without rerunning finished trials::

    def interrupt_after_first(trial_id: str) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's "stop, save the state" signal

    with hooks.on_trial_complete(interrupt_after_first):
        run_sweep(plan)

Why a slot here and not a ``run_sweep`` argument: Tune pickles its callbacks with the experiment and
``Tuner.restore`` brings those back instead of taking new ones, so the callback must look the hook up
when a trial completes rather than carry it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["TrialHook", "on_trial_complete", "trial_completed"]

TrialHook = Callable[[str], None]
"""Called with the id of a trial that has just completed (finished, or stopped by ASHA)."""

_installed: list[TrialHook] = []  # the innermost ``on_trial_complete`` block's hook last


@contextmanager
def on_trial_complete(hook: TrialHook) -> Iterator[None]:
    """Call ``hook(trial_id)`` for every trial that completes while the block runs."""
    _installed.append(hook)
    try:
        yield
    finally:
        _installed.pop()


def trial_completed(trial_id: str) -> None:
    """Called by the sweep when a trial completes: runs the installed hook, if any."""
    if _installed:
        _installed[-1](trial_id)
