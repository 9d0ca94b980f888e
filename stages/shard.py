"""DVC stage `shard`: turn the source named in params `shard` into WebDataset shards.

    python stages/shard.py [--params params.yaml] [--out data/shards]

Writes ``<out>/{train,test}/*.tar`` and ``<out>/manifest.json`` atomically. Bad input (params, a
missing or malformed source: any :class:`pipeline.errors.UserError`) and OS errors (an unwritable
``--out``) exit with status 2 and a one-line message naming the key, file or value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# `python stages/shard.py` puts stages/ on sys.path; make the packages importable without an install too
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def main(argv: list[str] | None = None) -> None:
    from pipeline.data.shards import write_shards
    from pipeline.errors import UserError
    from pipeline.params import load_params

    parser = argparse.ArgumentParser(prog="stages/shard.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--out", default="data/shards", help="output folder (default: data/shards)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        config = load_params(args.params).shard
        manifest = write_shards(config, args.out, progress=not args.no_progress)
    except (UserError, OSError) as err:
        print(f"shard: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    counts = ", ".join(f"{split} {n}" for split, n in manifest["counts"].items())
    shards = sum(len(s["shards"]) for s in manifest["splits"].values())
    print(
        f"shard: {manifest['source']['name']} -> {args.out}: {counts} images "
        f"{tuple(manifest['image_shape'])}, {shards} shards",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
