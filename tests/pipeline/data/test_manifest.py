"""The shard manifest: its one reader's errors (missing file, unknown split, truncated shard), its
byte-exact writer, and sha256 verification."""

from __future__ import annotations

import json

import pytest
from data_support import copy_shards_fixture, shards_fixture, toy_source  # noqa: F401 (the *_fixture names are fixtures)

from pipeline.data.loaders import eval_loader, read_split, train_loader
from pipeline.data.manifest import (
    MANIFEST,
    load_manifest,
    make_manifest,
    shard_files,
    verify_shards,
    write_manifest,
)
from pipeline.errors import DataError, UserError


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match=r"manifest\.json: shard manifest not found; run `dvc repro shard`"):
        load_manifest(tmp_path)
    with pytest.raises(DataError, match="dvc repro shard"):
        train_loader(tmp_path, "train", 4, seed=0)


def test_bad_manifests_are_user_errors(tmp_path):
    path = tmp_path / MANIFEST
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"manifest\.json: not valid JSON"):
        load_manifest(tmp_path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match=r"not a shard manifest of format lzn-shards/1"):
        load_manifest(tmp_path)
    path.write_text(json.dumps({"format": "lzn-shards/1", "image_shape": [1, 2, 2]}))
    with pytest.raises(DataError, match=r"missing key 'channels'"):
        load_manifest(tmp_path)


def test_unknown_split(shards):
    with pytest.raises(DataError, match=r"no split 'val' \(has test, train\)"):
        eval_loader(shards, "val", 4)


def test_truncated_shard_named(copy_shards):
    path = copy_shards / "train" / "train-000003.tar"
    path.write_bytes(path.read_bytes()[:1500])
    for fn in (
        lambda: read_split(copy_shards, "train"),
        lambda: train_loader(copy_shards, "train", 4, seed=0),
    ):
        with pytest.raises(DataError, match=r"train-000003\.tar: truncated or modified shard \(1500 bytes"):
            fn()
    with pytest.raises(DataError, match=r"train-000003\.tar"):
        verify_shards(copy_shards)


def test_written_bytes_and_shard_list(shards, tmp_path):
    """The manifest on disk is ``json.dumps(indent=2, sort_keys=True)`` plus a newline, and what
    :func:`load_manifest` returns; :func:`shard_files` lists the split's shards in order."""
    manifest = load_manifest(shards)
    text = (shards / MANIFEST).read_text()
    assert text == json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    remade = make_manifest(toy_source().info, manifest["params"], manifest["splits"])
    assert remade == manifest
    write_manifest(tmp_path, remade)
    assert (tmp_path / MANIFEST).read_bytes() == (shards / MANIFEST).read_bytes()
    files = shard_files(shards, "test")
    assert [n for _, n in files] == [5, 5, 5, 5, 2]
    assert [f.rsplit("/", 1)[1] for f, _ in files] == [f"test-{i:06d}.tar" for i in range(5)]
    verify_shards(shards)
