"""DVC stage `probe`: linear probe on the frozen extracted features of an encoder experiment
(backbone = main row; anchor / latent alpha 0 / latent alpha 1 = the Fig. 19 ablation rows)
-> reports/probe/<experiment>.json, logged into each model's MLflow run.

    python stages/probe.py --experiment lzn_repr [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.probe import PROBE_EXPERIMENTS, evaluate_probe
    from pipeline.io import write_json
    from pipeline.paths import Layout

    root, params, name = _cli.evaluation_inputs(__doc__, "params.yaml, features/, models/", PROBE_EXPERIMENTS, "probe")
    report = evaluate_probe(root, name, params)
    out = write_json(Layout(root).stage_report("probe", name), report)
    print(f"probe {name}: top-1 {report['probe_top1']:.4f} (+- {report['probe_top1_std']:.4f}, "
          f"{report['seed_count']} seed(s)) -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
