"""DVC stage `classify`: lzn_joint classification by the reverse label flow (default protocol and the
test-set-tuned Fig. 25 protocol, reported separately) -> reports/classify/lzn_joint.json, and the
supervised cross-entropy baseline on the same encoder architecture -> reports/classify/supervised.json.

    python stages/classify.py [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.build import DataShape
    from pipeline.data.images import from_uint8
    from pipeline.data.loaders import read_split
    from pipeline.data.manifest import load_manifest
    from pipeline.evaluate.classify import evaluate_label_flow, supervised_baseline
    from pipeline.evaluate.seeds import load_seed_models
    from pipeline.io import write_json
    from pipeline.paths import Layout

    root, params, _ = _cli.evaluation_inputs(__doc__, "params.yaml, data/, models/")
    layout = Layout(root)
    shard_dir = layout.shards
    manifest = load_manifest(shard_dir)
    models = load_seed_models(root, "lzn_joint", params.seeds)
    train, test = (read_split(shard_dir, split) for split in ("train", "test"))
    train, test = ((from_uint8(x), y) for x, y, _ in (train, test))
    out = layout.reports / "classify"
    lzn = evaluate_label_flow(root, models, test, params.classify, manifest)
    sup = supervised_baseline(root, params, DataShape.from_manifest(manifest), train, test, manifest)
    write_json(out / "lzn_joint.json", lzn)
    write_json(out / "supervised.json", sup)
    print(f"classify lzn_joint: default {lzn['accuracy_default']:.4f}, tuned {lzn['accuracy_tuned']:.4f} "
          f"(alpha selected on the test set); supervised {sup['accuracy']:.4f} -> {out}")


if __name__ == "__main__":
    _cli.run_main(main)
