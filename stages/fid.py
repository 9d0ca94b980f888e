"""DVC stage `fid`: FID (main and Euler sampler), Inception Score, precision/recall against the training
set and the reconstruction error of a generative experiment (every seed) -> reports/fid/<experiment>.json,
logged into each model's MLflow run. The feature network is `fid.feature_network` (`reference` needs
the `refnet` stage; `inception` a TorchScript Inception file).

    python stages/fid.py --experiment rf_lzn [--root .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.evaluation import check_experiment, load_seed_models, write_json
    from pipeline.fid import FID_EXPERIMENTS, evaluate_fid
    from pipeline.params import load_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help=f"one of {', '.join(FID_EXPERIMENTS)}")
    parser.add_argument("--root", default=".", help="project root holding params.yaml, data/, models/, samples/ (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root (default: params.yaml)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    name = check_experiment(args.experiment, FID_EXPERIMENTS, "fid")
    models = load_seed_models(root, name, params.seeds)
    report = evaluate_fid(root, name, models, params)
    out = write_json(root / "reports" / "fid" / f"{name}.json", report)
    print(f"fid {name}: FID {report['fid']:.3f} ({report['feature_network']}), "
          f"recon {report['recon_error']:.3f} -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
