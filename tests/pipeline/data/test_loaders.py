"""Loaders: what the batches hold, seeded endless training epochs, the evaluation count check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_support import N_TEST, N_TRAIN, copy_shards_fixture, shards_fixture, toy_source  # noqa: F401 (the *_fixture names are fixtures)

from pipeline.data.loaders import count_check, eval_loader, read_split, train_loader
from pipeline.data.shards import write_source
from pipeline.errors import DataError


# ------------------------------------------------------------------------------------ contents
def test_read_split_matches_source(shards):
    src = toy_source()
    for split in ("train", "test"):
        images, labels, keys = read_split(shards, split)
        idx = [int(k.rsplit("-", 1)[1]) for k in keys]
        assert images.dtype == torch.uint8 and images.shape == (len(idx), 1, 6, 5)
        np.testing.assert_array_equal(images[:, 0].numpy(), src.images(split)[idx])
        np.testing.assert_array_equal(labels.numpy(), src.labels(split)[idx])
        assert sorted(idx) == list(range(src.size(split)))


def test_eval_batches_are_float_in_range(shards):
    images, labels, keys = read_split(shards, "test")
    batches = list(eval_loader(shards, "test", 8))
    assert [len(b[2]) for b in batches] == [8, 8, 6]
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and x.shape == (N_TEST, 1, 6, 5)
    assert torch.equal(x, images.float() / 127.5 - 1)  # ordered: same order as read_split
    assert torch.cat([b[1] for b in batches]).dtype == torch.int64
    assert sum((b[2] for b in batches), []) == keys


def test_rgb_keeps_three_channels(tmp_path):
    write_source(toy_source(channels=3), tmp_path / "s", shard_size=7, progress=False)
    images, _, _ = read_split(tmp_path / "s", "train")
    assert images.shape == (N_TRAIN, 3, 6, 5)
    x, _, _ = next(iter(train_loader(tmp_path / "s", "train", 4, seed=0)))
    assert x.shape == (4, 3, 6, 5) and x.min() >= -1 and x.max() <= 1


# --------------------------------------------------------------------------- evaluation: exact
def test_count_check(copy_shards):
    assert count_check(10, 10) == 10
    assert count_check(4, 10, local_expected=4) == 10
    with pytest.raises(DataError, match="saw 9 samples, expected 10"):
        count_check(9, 10, what="x")
    # a manifest that promises more samples than the shards hold fails the pass
    path = copy_shards / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["test"]["shards"][0]["samples"] = 6
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"test-000000\.tar: 5 samples in the shard, the manifest says 6"):
        list(eval_loader(copy_shards, "test", 4))


# ------------------------------------------------------------------------------------- training
def test_train_batches_seeded_and_endless(shards):
    def epochs(seed, n=3):
        loader = train_loader(shards, "train", 6, seed=seed, epoch_length=5, shuffle_buffer=16)
        return [[k for _, _, keys in loader for k in keys] for _ in range(n)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert a == b and a != c
    assert a[0] != a[1]  # the stream continues across epochs
    assert all(len(e) == 30 for e in a)  # 5 batches of 6 per epoch, beyond the 40 samples
    x, y, keys = next(iter(train_loader(shards, "train", 6, seed=0)))
    assert x.shape == (6, 1, 6, 5) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and len(keys) == 6
    assert len(train_loader(shards, "train", 6, seed=0)) == N_TRAIN // 6  # default epoch length
