"""DVC stage `refnet`: train the reference classifier (the digits feature network) on the real
training split; writes models/refnet/{model.pt, refnet.json} and reports/refnet.json.

    python stages/refnet.py [--root .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _cli


def main() -> None:
    from pipeline.evaluation import write_json
    from pipeline.params import load_params
    from pipeline.refnet import REFNET_DIR, train_refnet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project root holding params.yaml, data/, models/ (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root (default: params.yaml)")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    info = train_refnet(params.refnet, root / "data" / "shards", root / REFNET_DIR)
    report = {k: v for k, v in info.items() if k != "params"}
    write_json(root / "reports" / "refnet.json", report)
    print(f"refnet: test accuracy {info['test_accuracy']:.4f} ({info['seconds']:.1f} s) -> {root / REFNET_DIR}")


if __name__ == "__main__":
    _cli.run_main(main)
