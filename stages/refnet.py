"""DVC stage `refnet`: train the reference classifier (the digits feature network) on the real
training split; writes models/refnet/{model.pt, refnet.json} and reports/refnet.json.

    python stages/refnet.py [--root .]
"""

from __future__ import annotations

import _cli


def main() -> None:
    from pipeline.evaluate.refnet import train_refnet
    from pipeline.io import write_json
    from pipeline.paths import Layout

    root, params, _ = _cli.evaluation_inputs(__doc__, "params.yaml, data/, models/")
    layout = Layout(root)
    info = train_refnet(params.refnet, layout.shards, layout.refnet)
    report = {k: v for k, v in info.items() if k != "params"}
    write_json(layout.reports / "refnet.json", report)
    print(f"refnet: test accuracy {info['test_accuracy']:.4f} ({info['seconds']:.1f} s) -> {layout.refnet}")


if __name__ == "__main__":
    _cli.run_main(main)
