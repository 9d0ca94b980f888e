"""DVC stage `report`: the paper's Tables 1-4 with this run's numbers beside the published ones.

python stages/report.py                      # reads reports/*.json, writes reports/paper_tables.{md,json}
python stages/report.py --reports reports --out reports/paper_tables.md
"""

import _cli  # first: puts the repository root on sys.path


def main() -> None:
    import argparse
    from pathlib import Path

    from pipeline.report import write_report

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reports", default="reports", help="folder holding <experiment>.json (default: reports)"
    )
    parser.add_argument(
        "--out",
        default="reports/paper_tables.md",
        help="markdown to write; the JSON goes beside it (default: %(default)s)",
    )
    args = parser.parse_args()

    out = write_report(Path(args.reports), Path(args.out))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    _cli.run_main(main)
