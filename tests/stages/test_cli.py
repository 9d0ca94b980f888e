"""stages/_cli.py: a UserError becomes one line and exit 2; anything else keeps its traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages"))

import _cli  # noqa: E402

from pipeline.errors import DataError, ParamsError, UsageError, UserError  # noqa: E402


@pytest.mark.parametrize("err", [DataError("data/shards/manifest.json: missing"), ParamsError("train.x: bad"),
                                 UsageError("--experiment: bad")])
def test_user_errors_are_one_line_and_exit_2(err, capsys):
    def main():
        raise err

    with pytest.raises(SystemExit) as exit_info:
        _cli.run_main(main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {err}\n"
    assert isinstance(err, UserError)


@pytest.mark.parametrize("err", [ValueError("a bug deep in lzn"), FileNotFoundError("some/file"), KeyError("k")])
def test_other_errors_keep_their_traceback(err):
    def main():
        raise err

    with pytest.raises(type(err)):
        _cli.run_main(main)
