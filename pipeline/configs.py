"""Apply a paper-scale config (``configs/*.yaml``) onto ``params.yaml``.

    python -m pipeline.configs configs/cifar10.yaml [--params params.yaml] [--dry-run]

The config is deep-merged into the current params (mappings merge key by key, everything else is
replaced); every key of the config must already exist in ``params.yaml``, and the result is
validated before ``params.yaml`` is rewritten (atomically), so a typo never lands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamsError
from pipeline.io import write_text
from pipeline.params import read_params_dict, validate_params


def deep_merge(base: dict[str, Any], update: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in base:
            raise ParamsError(f"{name}: unknown parameter (not in params.yaml)")
        if isinstance(value, dict) and isinstance(base[key], dict):
            out[key] = deep_merge(base[key], value, name)
        else:
            out[key] = value
    return out


def apply_config(config_path: Path, params_path: Path, *, dry_run: bool = False) -> dict[str, Any]:
    config_path = Path(config_path)
    if not config_path.is_file():
        raise ParamsError(f"{config_path}: config file not found")
    update = yaml.safe_load(config_path.read_text()) or {}
    merged = deep_merge(read_params_dict(params_path), update)
    validate_params(merged, f"{params_path} + {config_path}")
    if not dry_run:
        write_text(
            params_path,
            f"# params.yaml with {config_path} applied (python -m pipeline.configs {config_path})\n"
            + yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=110),
        )
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dry-run", action="store_true", help="validate only; do not rewrite params.yaml")
    args = parser.parse_args()
    try:
        apply_config(args.config, args.params, dry_run=args.dry_run)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.params}: applied {args.config}" + (" (dry run)" if args.dry_run else ""))


if __name__ == "__main__":
    main()
