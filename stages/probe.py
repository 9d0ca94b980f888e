"""DVC stage `probe`: linear probe on the frozen extracted features of an encoder experiment
(backbone = main row; anchor / latent alpha 0 / latent alpha 1 = the Fig. 19 ablation rows)
-> reports/probe/<experiment>.json, logged into each model's MLflow run.

    python stages/probe.py --experiment lzn_repr [--root .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.evaluation import check_experiment, write_json
    from pipeline.params import load_params
    from pipeline.probe import PROBE_EXPERIMENTS, evaluate_probe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help=f"one of {', '.join(PROBE_EXPERIMENTS)}")
    parser.add_argument("--root", default=".", help="project root holding params.yaml, features/, models/ (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root (default: params.yaml)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    name = check_experiment(args.experiment, PROBE_EXPERIMENTS, "probe")
    report = evaluate_probe(root, name, params)
    out = write_json(root / "reports" / "probe" / f"{name}.json", report)
    print(f"probe {name}: top-1 {report['probe_top1']:.4f} (+- {report['probe_top1_std']:.4f}, "
          f"{report['seed_count']} seed(s)) -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
