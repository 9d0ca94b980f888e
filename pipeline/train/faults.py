"""Fault injection for the recovery tests: one hook in the worker loop, armed only by a test.

A test arms it around a training call::

    with faults.fail_at_step(3):
        train_experiment(params, raw, "rf", root)

While armed, the driver puts a :class:`FailAt` into each run's
:class:`pipeline.train.worker.WorkerConfig` (:func:`armed`); unarmed — in every production run — the
field is ``None``. The worker loop calls :func:`check` once per step on rank 0, which raises
:class:`InjectedFailure` when the step is reached, once per run: a marker file beside the run's
checkpoints records that it fired, so the attempt Ray restarts (``train.max_failures``) or a later
re-run of the stage trains on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FailAt", "InjectedFailure", "armed", "check", "fail_at_step"]


@dataclass(frozen=True)
class FailAt:
    """Fail once when the loop is about to train step ``step``; ``marker`` is written when it fires."""

    step: int
    marker: Path


class InjectedFailure(RuntimeError):
    """The failure a test asked for (a plain error: nothing for a user to fix)."""


_ARMED: list[int] = []  # steps of the enclosing fail_at_step blocks (driver process)


@contextmanager
def fail_at_step(step: int) -> Iterator[None]:
    """Tests: every run the driver starts inside this block fails once at ``step``."""
    _ARMED.append(int(step))
    try:
        yield
    finally:
        _ARMED.pop()


def armed(marker: Path) -> FailAt | None:
    """The driver side: the :class:`FailAt` of a run starting now, ``None`` outside :func:`fail_at_step`."""
    return FailAt(_ARMED[-1], Path(marker)) if _ARMED else None


def check(fault: FailAt | None, step: int) -> None:
    """The worker side (rank 0): raise :class:`InjectedFailure` at ``fault.step`` unless it fired before."""
    if fault is None or step != fault.step or fault.marker.exists():
        return
    fault.marker.write_text("failed once")
    raise InjectedFailure(f"injected failure at step {step}")
