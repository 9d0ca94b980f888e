"""Write a source into deterministic WebDataset tar shards plus ``manifest.json``.

Layout (the DVC out ``data/shards``)::

    <out>/manifest.json
    <out>/train/train-000000.tar, train-000001.tar, ...
    <out>/test/test-000000.tar, ...

Each sample is four tar members sharing the key ``<split>-<source index>``: ``.cls`` (the label as
decimal text), ``.json`` (``index``, ``split``, ``source`` and source-specific fields such as the
image file), ``.png`` (lossless; 1-channel images stay mode ``L``, 3-channel ones are ``RGB``).

Determinism: the same params give byte-identical tars and manifest. Members are written in a fixed
order (samples in split order, each sample's members sorted by extension) with ``mtime = 0``,
``uid = gid = 0``, empty user/group names, mode 0444, ustar format, and PNGs encoded by PIL with a
fixed ``compress_level`` and no metadata chunks (so the bytes depend only on the pixels and the zlib
build). The train split is written in a seeded permutation (``shard.seed``) so that every shard
mixes all classes; the test split keeps source order.

Atomicity: everything is written into a temporary folder beside ``out_dir`` and renamed into place
at the end (:func:`pipeline.io.atomic_dir`). On any error the temporary folder is removed and a
previous ``out_dir`` stays as it was. The manifest's format lives in :mod:`pipeline.data.manifest`.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.manifest import Manifest, SplitEntry, make_manifest, write_manifest
from pipeline.data.sources import SPLITS, Source, open_source
from pipeline.errors import DataError
from pipeline.io import atomic_dir, sha256_file

__all__ = ["PNG_COMPRESS_LEVEL", "encode_png", "write_shards", "write_source"]

PNG_COMPRESS_LEVEL = 6


def encode_png(image: np.ndarray) -> bytes:
    """Losslessly encode a uint8 ``[H, W]`` (mode L) or ``[H, W, 3]`` (RGB) array, deterministically."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise DataError(f"cannot encode image of dtype {image.dtype} and shape {list(image.shape)}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="L" if image.ndim == 2 else "RGB").save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False
    )
    return buf.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def _write_split(
    source: Source, split: str, order, folder: Path, shard_size: int, progress: bool
) -> SplitEntry:
    from tqdm import tqdm

    info = source.info
    folder.mkdir(parents=True)
    shards: list[dict[str, Any]] = []
    class_counts = [0] * len(info.class_names)
    tar = handle = None
    in_shard = 0
    with tqdm(total=source.size(split), desc=f"shard {split}", unit="img", disable=not progress) as bar:
        try:
            for sample in source.samples(split, order):
                if sample.image.shape != (
                    (info.height, info.width) if info.channels == 1 else (info.height, info.width, 3)
                ):
                    raise DataError(
                        f"{info.name}/{split}: sample {sample.key} has shape {list(sample.image.shape)}, "
                        f"expected {list(info.shape)} (C,H,W)"
                    )
                if tar is None:
                    name = f"{split}-{len(shards):06d}.tar"
                    handle = open(folder / name, "wb")
                    tar = tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT)
                    shards.append({"path": f"{split}/{name}", "samples": 0})
                members = {
                    "cls": str(sample.label).encode(),
                    "json": json.dumps(sample.meta, sort_keys=True, separators=(",", ":")).encode(),
                    "png": encode_png(sample.image),
                }
                for ext in sorted(members):
                    _add_member(tar, f"{sample.key}.{ext}", members[ext])
                class_counts[sample.label] += 1
                in_shard += 1
                shards[-1]["samples"] = in_shard
                bar.update(1)
                if in_shard == shard_size:
                    tar.close()
                    handle.close()
                    tar = handle = None
                    in_shard = 0
        finally:
            if tar is not None:
                tar.close()
            if handle is not None:
                handle.close()
    for shard in shards:
        path = folder.parent / shard["path"]
        shard["bytes"] = path.stat().st_size
        shard["sha256"] = sha256_file(path)
    count = sum(class_counts)
    if count == 0:
        raise DataError(f"{info.name}: split {split!r} is empty")
    return {"count": count, "class_counts": class_counts, "shards": shards}


def write_source(
    source: Source,
    out_dir: str | os.PathLike,
    *,
    shard_size: int,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> Manifest:
    """Write ``source`` as shards of ``shard_size`` samples into ``out_dir``; return the manifest.

    The train split is written in the order of ``numpy.random.default_rng(seed).permutation``; the
    test split in source order. ``params`` (the shard config) is recorded in the manifest.
    """
    if not isinstance(shard_size, int) or shard_size < 1:
        raise DataError(f"shard.shard_size: must be an integer >= 1, got {shard_size!r}")
    params = params if params is not None else {"shard_size": shard_size, "seed": seed}
    with atomic_dir(out_dir) as tmp:
        splits = {}
        for split in SPLITS:
            order = np.random.default_rng(seed).permutation(source.size(split)) if split == "train" else None
            splits[split] = _write_split(source, split, order, tmp / split, shard_size, progress)
        manifest = make_manifest(source.info, params, splits)
        write_manifest(tmp, manifest)
    return manifest


def write_shards(config: Any, out_dir: str | os.PathLike, *, progress: bool = True) -> Manifest:
    """Shard the source of a :class:`pipeline.params.ShardConfig` into ``out_dir``; return the manifest."""
    source = open_source(config)
    return write_source(
        source,
        out_dir,
        shard_size=config.shard_size,
        seed=config.seed,
        params=config.model_dump(mode="json"),
        progress=progress,
    )
