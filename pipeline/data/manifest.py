"""The shard manifest, ``<shard_dir>/manifest.json``: its format, how it is written, and its one reader.

Every piece of code that needs the manifest (the loaders, the training driver, the evaluation and
report stages) reads it through :func:`load_manifest`, which checks the format and names the file
and the command to rerun on any problem (:class:`pipeline.errors.DataError`).

A manifest is a JSON object (:class:`Manifest`)::

    format       "lzn-shards/1"
    source       {"name", "description"} of the source
    params       the shard config it was written with
    image_shape  [C, H, W];  channels C;  num_classes;  class_names [...]
    counts       {split: samples}
    splits       {split: {"count", "class_counts", "shards": [{"path", "samples", "bytes", "sha256"}]}}

It is written with ``json.dumps(manifest, indent=2, sort_keys=True) + "\\n"`` (:func:`write_manifest`),
so the same shards always give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypedDict

from pipeline.errors import DataError
from pipeline.io import sha256_file, write_json

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "RERUN",
    "Manifest",
    "ShardEntry",
    "SplitEntry",
    "load_manifest",
    "make_manifest",
    "manifest_path",
    "shard_files",
    "split_entry",
    "verify_shards",
    "write_manifest",
]

MANIFEST = "manifest.json"
"""File name of the manifest inside a shard folder."""
MANIFEST_FORMAT = "lzn-shards/1"
RERUN = "run `dvc repro shard` (python stages/shard.py)"
"""What to do about missing or damaged shards; ends the data errors' messages."""

_REQUIRED = ("image_shape", "channels", "class_names", "counts", "splits")


class ShardEntry(TypedDict):
    """One tar shard: path relative to the shard folder, sample count, byte size, hex sha256."""

    path: str
    samples: int
    bytes: int
    sha256: str


class SplitEntry(TypedDict):
    """One split: its sample count, per-class counts and shards (in reading order)."""

    count: int
    class_counts: list[int]
    shards: list[ShardEntry]


class Manifest(TypedDict):
    """The parsed ``manifest.json`` (a plain ``dict`` at run time; see the module docstring)."""

    format: str
    source: dict[str, str]
    params: dict[str, Any]
    image_shape: list[int]
    channels: int
    num_classes: int
    class_names: list[str]
    counts: dict[str, int]
    splits: dict[str, SplitEntry]


def manifest_path(shard_dir: str | os.PathLike) -> Path:
    """``<shard_dir>/manifest.json``."""
    return Path(shard_dir) / MANIFEST


# -------------------------------------------------------------------------------------- writing
def make_manifest(info: Any, params: dict[str, Any], splits: dict[str, SplitEntry]) -> Manifest:
    """The manifest of shards written from a source with :class:`~pipeline.data.sources.SourceInfo` ``info``."""
    return {
        "format": MANIFEST_FORMAT,
        "source": {"name": info.name, "description": info.description},
        "params": params,
        "image_shape": list(info.shape),
        "channels": info.channels,
        "num_classes": len(info.class_names),
        "class_names": list(info.class_names),
        "counts": {s: splits[s]["count"] for s in splits},
        "splits": splits,
    }


def write_manifest(shard_dir: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``<shard_dir>/manifest.json`` (indented, sorted keys, trailing newline) atomically."""
    return write_json(manifest_path(shard_dir), manifest, sort_keys=True)


# -------------------------------------------------------------------------------------- reading
def load_manifest(shard_dir: str | os.PathLike) -> Manifest:
    """Read and sanity-check ``<shard_dir>/manifest.json``; raise :class:`DataError` naming the file."""
    path = manifest_path(shard_dir)
    if not path.is_file():
        raise DataError(f"{path}: shard manifest not found; {RERUN}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exn:
        raise DataError(f"{path}: not valid JSON ({exn}); {RERUN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: not a shard manifest of format {MANIFEST_FORMAT}; {RERUN}")
    for key in _REQUIRED:
        if key not in manifest:
            raise DataError(f"{path}: missing key {key!r}; {RERUN}")
    return manifest


def split_entry(manifest: Manifest, split: str, shard_dir: str | os.PathLike) -> SplitEntry:
    """The manifest's entry of ``split``; a :class:`DataError` listing the splits if there is none."""
    if split not in manifest["splits"]:
        raise DataError(
            f"{manifest_path(shard_dir)}: no split {split!r} (has {', '.join(sorted(manifest['splits']))})"
        )
    return manifest["splits"][split]


def shard_files(
    shard_dir: str | os.PathLike, split: str, manifest: Manifest | None = None
) -> list[tuple[str, int]]:
    """``[(path, samples)]`` of a split's shards in manifest order; checks existence and byte size."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir) if manifest is None else manifest
    out = []
    for shard in split_entry(manifest, split, shard_dir)["shards"]:
        path = shard_dir / shard["path"]
        if not path.is_file():
            raise DataError(f"{path}: shard listed in the manifest is missing; {RERUN}")
        size = path.stat().st_size
        if size != shard["bytes"]:
            raise DataError(
                f"{path}: truncated or modified shard ({size} bytes, the manifest says {shard['bytes']}); {RERUN}"
            )
        out.append((str(path), int(shard["samples"])))
    return out


def verify_shards(shard_dir: str | os.PathLike, split: str | None = None) -> None:
    """Check every shard's sha256 against the manifest (reads all bytes; optional, slow for big data)."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    for s in [split] if split else list(manifest["splits"]):
        shard_files(shard_dir, s, manifest)
        for shard in manifest["splits"][s]["shards"]:
            path = shard_dir / shard["path"]
            if sha256_file(path) != shard["sha256"]:
                raise DataError(f"{path}: sha256 differs from the manifest (corrupt shard); {RERUN}")
