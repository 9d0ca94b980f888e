"""Helpers of the data-package tests: a toy in-memory source and ways to damage its shards."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.manifest import load_manifest
from pipeline.data.shards import write_source
from pipeline.data.sources import ArraySource

N_TRAIN, N_TEST, SHARD = 40, 22, 5  # 8 train shards, 5 test shards (the last one partial)


def toy_source(channels: int = 1, seed: int = 0) -> ArraySource:
    rng = np.random.default_rng(seed)
    shape = (6, 5) if channels == 1 else (6, 5, 3)
    mk = lambda n: (rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 3, n))  # noqa: E731
    return ArraySource("toy", "toy images", ["a", "b", "c"], {"train": mk(N_TRAIN), "test": mk(N_TEST)})


def key_to_shard(shard_dir: Path, split: str) -> dict[str, str]:
    out = {}
    for shard in load_manifest(shard_dir)["splits"][split]["shards"]:
        with tarfile.open(shard_dir / shard["path"]) as tar:
            for name in tar.getnames():
                out[name.split(".", 1)[0]] = shard["path"]
    return out


def rewrite_member(shard_dir: Path, rel: str, key: str, ext: str, data: bytes) -> None:
    """Replace one member of a shard and update the manifest (size, sha) so only its content is bad."""
    path = shard_dir / rel
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for m, payload in members:
            if m.name == f"{key}.{ext}":
                payload = data
            m.size = len(payload)
            tar.addfile(m, io.BytesIO(payload))
    mpath = shard_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    for shard in manifest["splits"][rel.split("/")[0]]["shards"]:
        if shard["path"] == rel:
            shard["bytes"] = path.stat().st_size
            shard["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    mpath.write_text(json.dumps(manifest))


def first_key(shard_dir: Path, rel: str) -> str:
    with tarfile.open(shard_dir / rel) as tar:
        return tar.getnames()[0].split(".", 1)[0]


# ---------------------------------------------------------------- fixtures (imported by the test modules)
@pytest.fixture(scope="session", name="shards")
def shards_fixture(tmp_path_factory) -> Path:
    """The toy source (:func:`data_support.toy_source`) as shards of ``SHARD`` samples; read-only."""
    out = tmp_path_factory.mktemp("readers") / "shards"
    write_source(toy_source(), out, shard_size=SHARD, seed=0, progress=False)
    return out


@pytest.fixture(name="copy_shards")
def copy_shards_fixture(shards, tmp_path) -> Path:
    """A copy of :func:`shards` that a test may damage."""
    shutil.copytree(shards, tmp_path / "shards")
    return tmp_path / "shards"
