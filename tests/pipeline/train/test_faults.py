"""The fault-injection seam: unarmed it is a no-op; armed, it fails once at its step."""

from __future__ import annotations

import pytest

from pipeline.errors import UserError
from pipeline.train import faults


def test_unarmed_runs_get_no_fault(tmp_path):
    assert faults.armed(tmp_path / "marker") is None
    faults.check(None, 0)  # the production path: nothing happens


def test_armed_fault_fires_once_at_its_step(tmp_path):
    with faults.fail_at_step(3):
        fault = faults.armed(tmp_path / "run.failed-once")
    assert fault == faults.FailAt(3, tmp_path / "run.failed-once")
    assert faults.armed(tmp_path / "marker") is None  # disarmed on leaving the block
    faults.check(fault, 2)
    with pytest.raises(faults.InjectedFailure, match="injected failure at step 3"):
        faults.check(fault, 3)
    assert fault.marker.read_text() == "failed once"
    faults.check(fault, 3)  # the restarted attempt trains on
    assert not issubclass(faults.InjectedFailure, UserError)  # a traceback, not a one-line user error


def test_fault_pickles_into_the_worker_config(tmp_path):
    import pickle

    fault = faults.FailAt(5, tmp_path / "m")
    assert pickle.loads(pickle.dumps(fault)) == fault
