"""DVC stage `extract`: backbone / anchor / latent features of an encoder experiment (every seed,
EMA weights), one exact ordered pass over train and test -> features/<experiment>/seed_<s>/*.parquet.

    python stages/extract.py --experiment lzn_repr [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.extract import EXTRACT_EXPERIMENTS, extract_experiment
    from pipeline.evaluate.seeds import load_seed_models
    from pipeline.paths import Layout

    root, params, name = _cli.evaluation_inputs(__doc__, "params.yaml, data/, models/", EXTRACT_EXPERIMENTS, "extract")
    models = load_seed_models(root, name, params.seeds)
    layout = Layout(root)
    out = layout.features(name)
    counts = extract_experiment(models, layout.shards, out, batch_size=params.extract.batch_size)
    for seed, c in counts.items():
        print(f"extract {name} seed {seed}: {c['train']} train / {c['test']} test rows -> {out / f'seed_{seed}'}")


if __name__ == "__main__":
    _cli.run_main(main)
