"""Training throughput on Ray Train: images/s with 1 and 2 CPU workers on the same experiment.

    python bench/bench_train.py [--experiment rf_lzn] [--steps 60]

Both runs use the default digits params (same global batch, so the same work per step), a fresh
temporary project and one local Ray instance. The throughput is the median over the logging
intervals after the first (warm-up) one, as reported by rank 0 (global images per second).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from pipeline.cluster import ensure_ray
    from pipeline.data.shards import write_shards
    from pipeline.params import MODULES, apply_overrides, read_params_dict, validate_params
    from pipeline.train.driver import train_experiment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="rf_lzn")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()

    ensure_ray()
    base = read_params_dict(REPO / "params.yaml")
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        write_shards(validate_params(base).shard, shards, progress=False)
        for workers in (1, 2):
            root = Path(tmp) / f"w{workers}"
            (root / "data").mkdir(parents=True)
            shutil.copytree(shards, root / "data" / "shards")
            raw = apply_overrides(
                base,
                {
                    "train.workers": workers,
                    "train.cpus_per_worker": 1.0,
                    "train.log_every": 10,
                    "train.checkpoint_every": args.steps,
                    f"train.{args.experiment}.iterations": {m: args.steps for m in MODULES[args.experiment]},
                },
            )
            import os

            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
            out = train_experiment(validate_params(raw), raw, args.experiment, root)
            history = json.loads((out / "seed_0" / "history.json").read_text())
            per_interval = [h["images_per_s"] for h in history[1:]]
            rates[workers] = statistics.median(per_interval)
            print(f"{args.experiment}: {workers} worker(s): median {rates[workers]:.0f} images/s "
                  f"over {len(per_interval)} intervals ({[round(r) for r in per_interval]})")
    print(f"scaling 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (ideal 2.00x on 2 idle cores)")


if __name__ == "__main__":
    main()
