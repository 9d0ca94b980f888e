"""DVC stage `refnet`: train the reference classifier (the digits feature network) on the real
training split; writes models/refnet/{model.pt, refnet.json} and reports/refnet.json.

    python stages/refnet.py [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.refnet import REFNET_DIR, train_refnet
    from pipeline.io import write_json

    root, params, _ = _cli.evaluation_inputs(__doc__, "params.yaml, data/, models/")
    info = train_refnet(params.refnet, root / "data" / "shards", root / REFNET_DIR)
    report = {k: v for k, v in info.items() if k != "params"}
    write_json(root / "reports" / "refnet.json", report)
    print(f"refnet: test accuracy {info['test_accuracy']:.4f} ({info['seconds']:.1f} s) -> {root / REFNET_DIR}")


if __name__ == "__main__":
    _cli.run_main(main)
