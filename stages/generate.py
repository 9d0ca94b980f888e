"""DVC stage `generate`: sample a generative experiment (every seed, EMA weights) with the main sampler
(RK45 by default) and the Euler sampler -> samples/<experiment>/seed_<s>/{samples.npz, samples_euler.npz,
grid.png}; the grid is logged to the model's MLflow run.

    python stages/generate.py --experiment rf_lzn [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.generate import GENERATE_EXPERIMENTS, generate_experiment
    from pipeline.evaluate.seeds import load_seed_models
    from pipeline.paths import Layout

    root, params, name = _cli.evaluation_inputs(__doc__, "params.yaml, models/", GENERATE_EXPERIMENTS, "generate")
    models = load_seed_models(root, name, params.seeds)
    out = Layout(root).samples(name)
    report = generate_experiment(root, models, params.generate, out, label_steps=params.classify.label_steps)
    print(f"generate {name}: {params.generate.num_samples} samples per seed, NFE {report['nfe']:.0f} "
          f"({params.generate.sampler}), {report['seconds']:.1f} s -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
