"""DVC stage `report`: merge the evaluation reports and regenerate the paper's Tables 1-4.

    python stages/report.py          # reports/{probe,classify,fid}/*.json -> reports/<name>.json,
                                     # reports/paper_tables.{md,json}, reports/zones.png

``reports/<name>.json`` (one flat object per experiment, DVC metrics) merges the partial reports of
the evaluation stages; the tables put this run's numbers beside the published ones.
"""

import _cli  # first: puts the repository root on sys.path


def main() -> None:
    import argparse
    from pathlib import Path

    from pipeline.report.merge import write_merged
    from pipeline.report.tables import write_paper_tables

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default="reports", help="folder of the reports (default: reports)")
    parser.add_argument("--out", default="reports/paper_tables.md", help="markdown to write (default: %(default)s)")
    parser.add_argument("--root", default=".", help="project root holding models/ (default: .)")
    parser.add_argument("--no-merge", action="store_true", help="use reports/<name>.json as they are")
    args = parser.parse_args()

    reports = Path(args.reports)
    if not args.no_merge:
        for path in write_merged(reports):
            print(f"merged {path}")
    out = write_paper_tables(reports, Path(args.out))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    zones = _plot_zones(Path(args.root), reports / "zones.png")
    if zones:
        print(f"wrote {zones}")


def _plot_zones(root, out):
    """Zone map of the label anchors of lzn_joint (seed 0), when that model exists."""
    from pipeline.artifacts import load_exported
    from pipeline.data.manifest import load_manifest
    from pipeline.paths import Layout
    from pipeline.report.zones import plot_zones

    layout = Layout(root)
    model_dir = layout.model("lzn_joint", 0)
    if not (model_dir / "model.pt").is_file():
        return None
    modules, config, _ = load_exported(model_dir)
    manifest = load_manifest(layout.shards)
    return plot_zones(modules["labels"].A, out, manifest["class_names"])


if __name__ == "__main__":
    _cli.run_main(main)
