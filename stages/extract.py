"""DVC stage `extract`: backbone / anchor / latent features of an encoder experiment (every seed,
EMA weights), one exact ordered pass over train and test -> features/<experiment>/seed_<s>/*.parquet.

    python stages/extract.py --experiment lzn_repr [--root .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.evaluation import check_experiment, load_seed_models
    from pipeline.extract import EXTRACT_EXPERIMENTS, extract_experiment
    from pipeline.params import load_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help=f"one of {', '.join(EXTRACT_EXPERIMENTS)}")
    parser.add_argument("--root", default=".", help="project root holding params.yaml, data/, models/ (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root (default: params.yaml)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    name = check_experiment(args.experiment, EXTRACT_EXPERIMENTS, "extract")
    models = load_seed_models(root, name, params.seeds)
    out = root / "features" / name
    counts = extract_experiment(models, root / "data" / "shards", out, batch_size=params.extract.batch_size)
    for seed, c in counts.items():
        print(f"extract {name} seed {seed}: {c['train']} train / {c['test']} test rows -> {out / f'seed_{seed}'}")


if __name__ == "__main__":
    _cli.run_main(main)
