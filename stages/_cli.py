"""Shared command-line plumbing of the stage scripts: user-facing errors are one line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.params import Params

# `python stages/<name>.py` puts stages/ (not the repo root) on sys.path; make the packages importable
# also when the project is not pip-installed (e.g. a Ray job's working directory).
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

def run_main(main: Callable[[], None]) -> None:
    """Call ``main``; print a :class:`pipeline.errors.UserError` as one line on stderr and exit with status 2.

    Anything else (a bug, a ``ValueError`` from deep in ``lzn``) keeps its traceback.
    """
    from pipeline.errors import UserError

    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def evaluation_inputs(
    doc: str, holds: str, experiments: Sequence[str] | None = None, stage: str = ""
) -> tuple[Path, Params, str | None]:
    """The evaluation stages' command line, ``[--experiment NAME] [--root .] [--params params.yaml]``.

    Returns ``(root, params, experiment)``: the resolved root, the validated params read from
    ``root / --params``, and the experiment checked against ``experiments`` (``None`` when the stage
    takes none). ``holds`` names what the root must hold, for ``--help``.
    """
    import argparse

    from pipeline.params import load_params

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if experiments is not None:
        parser.add_argument("--experiment", required=True, help=f"one of {', '.join(experiments)}")
    parser.add_argument("--root", default=".", help=f"project root holding {holds} (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root (default: params.yaml)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    if experiments is None:
        return root, params, None
    from pipeline.evaluate.seeds import check_experiment

    return root, params, check_experiment(args.experiment, experiments, stage)
