"""DVC stage `fid`: FID (main and Euler sampler), Inception Score, precision/recall against the training
set and the reconstruction error of a generative experiment (every seed) -> reports/fid/<experiment>.json,
logged into each model's MLflow run. The feature network is `fid.feature_network` (`reference` needs
the `refnet` stage; `inception` a TorchScript Inception file).

    python stages/fid.py --experiment rf_lzn [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.fid import FID_EXPERIMENTS, evaluate_fid
    from pipeline.evaluate.seeds import load_seed_models
    from pipeline.io import write_json
    from pipeline.paths import Layout

    root, params, name = _cli.evaluation_inputs(__doc__, "params.yaml, data/, models/, samples/", FID_EXPERIMENTS, "fid")
    models = load_seed_models(root, name, params.seeds)
    report = evaluate_fid(root, name, models, params)
    out = write_json(Layout(root).stage_report("fid", name), report)
    print(f"fid {name}: FID {report['fid']:.3f} ({report['feature_network']}), "
          f"recon {report['recon_error']:.3f} -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
