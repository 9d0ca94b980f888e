"""DVC stage `train`: train one experiment (every seed) on Ray Train and export models/<experiment>/.

    python stages/train.py --experiment rf_lzn            # local Ray, or RAY_ADDRESS when set
    ray job submit --working-dir . -- python stages/train.py --experiment rf_lzn --root "$PWD"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.errors import UsageError
    from pipeline.params import EXPERIMENTS, read_params_dict, validate_params
    from pipeline.train.driver import train_experiment

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", action="append", help=f"one of {', '.join(EXPERIMENTS)} (repeatable; default: all)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--root", default=".", help="project root holding data/, models/, mlflow.db (default: .)")
    parser.add_argument("--seed", type=int, action="append", help="train only these seeds (default: params seeds)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params_path = Path(args.params) if Path(args.params).is_absolute() else root / args.params
    raw = read_params_dict(params_path)
    params = validate_params(raw, str(params_path))
    for name in args.experiment or EXPERIMENTS:  # unknown names fail before Ray starts
        if name not in EXPERIMENTS:
            raise UsageError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    for name in args.experiment or EXPERIMENTS:
        out = train_experiment(params, raw, name, root, seeds=args.seed)
        print(f"exported {out}")


if __name__ == "__main__":
    _cli.run_main(main)
