"""Shared command-line plumbing of the stage scripts: user-facing errors are one line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# `python stages/<name>.py` puts stages/ (not the repo root) on sys.path; make the packages importable
# also when the project is not pip-installed (e.g. a Ray job's working directory).
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError)


def run_main(main: Callable[[], None]) -> None:
    """Call ``main``; print known user errors as one line on stderr and exit with status 2."""
    from pipeline.cluster import ClusterError

    try:
        main()
    except (*USER_ERRORS, ClusterError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
