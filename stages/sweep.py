"""DVC stage `sweep` (frozen): Ray Tune + ASHA over the `sweep` section of params.yaml.

    python stages/sweep.py                                  # local Ray, or RAY_ADDRESS when set
    python stages/sweep.py --experiment simclr              # another experiment (its metric and space must fit)
    ray job submit --working-dir . -- python stages/sweep.py --root "$PWD"

Writes reports/sweep.json, reports/sweep_best.yaml and reports/sweep_<param>.png once every trial has
ended. Interrupted (Ctrl+C), it exits with status 130; running it again resumes the sweep without
rerunning finished trials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.errors import SweepFailedError
    from pipeline.params import EXPERIMENTS, read_params_dict, validate_params
    from pipeline.sweep.plan import plan_sweep
    from pipeline.sweep.run import run_sweep

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--root", default=".", help="project root holding data/, reports/, mlflow.db (default: .)")
    parser.add_argument("--experiment", default=None, help=f"override sweep.experiment ({', '.join(EXPERIMENTS)})")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params_path = Path(args.params) if Path(args.params).is_absolute() else root / args.params
    raw = read_params_dict(params_path)
    params = validate_params(raw, str(params_path))
    plan = plan_sweep(params, raw, root, experiment=args.experiment)  # every check before Ray starts
    try:
        summary = run_sweep(plan, reports_dir=root / "reports")
    except SweepFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    done = sum(t["status"] in ("TERMINATED", "ERROR") for t in summary["trials"])
    if not summary["complete"]:
        print(f"sweep {plan.name} interrupted after {done}/{plan.config.num_samples} trials; "
              "run the stage again to resume", file=sys.stderr)
        sys.exit(130)
    best = summary["best"]
    print(f"sweep {plan.name}: {done} trials, {summary['stopped_early']} stopped early; best {best['trial_id']} "
          f"{summary['metric']}={best[summary['metric']]:.4g} with {best['overrides']}")
    print(f"wrote {root / 'reports' / 'sweep.json'} and {root / 'reports' / 'sweep_best.yaml'}")


if __name__ == "__main__":
    _cli.run_main(main)
