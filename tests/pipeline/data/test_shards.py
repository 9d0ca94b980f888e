"""Shard writer: pixel-exact round trips, determinism, layout, manifest, atomicity."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipeline.data.loaders import read_split
from pipeline.data.shards import write_shards, write_source
from pipeline.data.sources import ArraySource
from pipeline.errors import DataError
from pipeline.params import ShardConfig

CLASSES = [f"c{i}" for i in range(10)]


def write_cifar(root, per_batch=(3, 2, 4, 1, 2), test=3, seed=0):
    """A small archive in the real CIFAR-10 python format -> (archive, train (x, y), test (x, y))."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = {}
    for name, n in [(f"data_batch_{i + 1}", n) for i, n in enumerate(per_batch)] + [("test_batch", test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        out[name] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}))
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    trains = [out[f"data_batch_{i + 1}"] for i in range(len(per_batch))]
    train = (np.concatenate([x for x, _ in trains]), np.concatenate([y for _, y in trains]))
    return archive, train, (out["test_batch"][0], np.array(out["test_batch"][1]))


def key_index(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


def tree_digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_digits_round_trip_pixel_exact(tmp_path):
    d = load_digits()
    want = np.rint(d.images * 255 / 16).astype(np.uint8)
    manifest = write_shards(ShardConfig(shard_size=300), tmp_path / "shards", progress=False)
    assert manifest["image_shape"] == [1, 8, 8] and manifest["channels"] == 1
    assert manifest["counts"] == {"train": 1437, "test": 360}
    keys = []
    for split in ("train", "test"):
        images, labels, k = read_split(tmp_path / "shards", split)
        assert images.dtype == torch_uint8() and images.shape == (len(k), 1, 8, 8)
        rows = np.array([key_index(x) for x in k])
        np.testing.assert_array_equal(images[:, 0].numpy(), want[rows])
        np.testing.assert_array_equal(labels.numpy(), d.target[rows])
        assert manifest["splits"][split]["class_counts"] == np.bincount(d.target[rows], minlength=10).tolist()
        keys += k
    assert len(set(keys)) == 1797
    # 1437 train samples in shards of 300: 4 full + 1 partial, written in a seeded permutation
    shards = manifest["splits"]["train"]["shards"]
    assert [s["samples"] for s in shards] == [300, 300, 300, 300, 237]
    assert [s["path"] for s in shards] == [f"train/train-{i:06d}.tar" for i in range(5)]
    train_keys = read_split(tmp_path / "shards", "train")[2]
    assert train_keys != sorted(train_keys)
    test_keys = read_split(tmp_path / "shards", "test")[2]
    assert test_keys == sorted(test_keys)  # test split keeps source order


def torch_uint8():
    import torch

    return torch.uint8


@pytest.mark.parametrize("form", ["archive", "folder"])
def test_cifar10_round_trip_pixel_exact(tmp_path, form):
    archive, (tx, ty), (vx, vy) = write_cifar(tmp_path / "raw")
    path = archive if form == "archive" else archive.parent / "cifar-10-batches-py"
    manifest = write_shards(
        ShardConfig(source="cifar10", path=str(path), shard_size=4), tmp_path / "s", progress=False
    )
    assert manifest["class_names"] == CLASSES and manifest["image_shape"] == [3, 32, 32]
    assert manifest["counts"] == {"train": 12, "test": 3}
    for split, (x, y) in (("train", (tx, ty)), ("test", (vx, vy))):
        images, labels, keys = read_split(tmp_path / "s", split)
        idx = [key_index(k) for k in keys]
        np.testing.assert_array_equal(images.permute(0, 2, 3, 1).numpy(), x[idx])
        np.testing.assert_array_equal(labels.numpy(), y[idx])


def test_imagefolder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "test"):
        for cls in ("b", "a"):
            for i in range(2):
                a = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
                p = tmp_path / "raw" / split / cls / f"{i}.{'jpeg' if i else 'png'}"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(p)
                arrays[f"{split}/{cls}/{i}"] = np.asarray(Image.open(p).convert("RGB"))
    cfg = ShardConfig(source="imagefolder", path=str(tmp_path / "raw"), shard_size=3)
    manifest = write_shards(cfg, tmp_path / "s", progress=False)
    assert manifest["class_names"] == ["a", "b"] and manifest["image_shape"] == [3, 6, 5]
    for split in ("train", "test"):
        images, labels, keys = read_split(tmp_path / "s", split)
        # the json member records the file each sample came from
        metas = sample_members(tmp_path / "s", split, "json")
        for img, lab, key in zip(images, labels, keys):
            rel = json.loads(metas[key])["file"]
            np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), arrays[rel.rsplit(".", 1)[0]])
            assert int(lab) == ["a", "b"].index(rel.split("/")[1])


def sample_members(shard_dir, split, ext):
    out = {}
    for tar_path in sorted((shard_dir / split).glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                key, e = m.name.split(".", 1)
                if e == ext:
                    out[key] = tar.extractfile(m).read()
    return out


def test_deterministic_bytes_and_tar_metadata(tmp_path):
    cfg = ShardConfig(shard_size=500)
    m1 = write_shards(cfg, tmp_path / "a", progress=False)
    m2 = write_shards(cfg, tmp_path / "b", progress=False)
    assert m1 == m2
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    for shard in m1["splits"]["train"]["shards"]:
        path = tmp_path / "a" / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert path.stat().st_size == shard["bytes"]
    with tarfile.open(tmp_path / "a" / "train" / "train-000000.tar") as tar:
        members = tar.getmembers()
    assert all(
        m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.mode == 0o444 for m in members
    )
    names = [m.name for m in members]
    assert [n.split(".", 1)[1] for n in names[:3]] == ["cls", "json", "png"]
    assert len({n.split(".", 1)[0] for n in names}) == 500
    png = Image.open(io.BytesIO(sample_members(tmp_path / "a", "train", "png")[names[0].split(".")[0]]))
    assert png.mode == "L" and png.size == (8, 8)  # grayscale stays one channel
    m3 = write_shards(ShardConfig(shard_size=500, seed=1), tmp_path / "c", progress=False)
    assert m3["splits"]["train"]["shards"][0]["sha256"] != m1["splits"]["train"]["shards"][0]["sha256"]


class FailingSource(ArraySource):
    def __init__(self, fail_at: int):
        rng = np.random.default_rng(0)
        mk = lambda n: (rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), np.arange(n) % 2)  # noqa: E731
        super().__init__("toy", "toy", ["x", "y"], {"train": mk(10), "test": mk(4)})
        self.fail_at, self.reads = fail_at, 0

    def read(self, split, index):
        self.reads += 1
        if self.reads == self.fail_at:
            raise DataError(f"toy/{split}: sample {index} is broken")
        return super().read(split, index)


def test_atomic_on_error(tmp_path):
    out = tmp_path / "shards"
    with pytest.raises(DataError, match="broken"):
        write_source(FailingSource(fail_at=12), out, shard_size=3, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written, no temp folder
    write_source(FailingSource(fail_at=10**6), out, shard_size=3, progress=False)
    before = tree_digest(out)
    with pytest.raises(DataError, match="broken"):
        write_source(FailingSource(fail_at=5), out, shard_size=2, progress=False)
    assert tree_digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    # a successful rewrite replaces the old out entirely
    write_source(FailingSource(fail_at=10**6), out, shard_size=20, progress=False)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["train-000000.tar"]


def test_shard_size_must_be_positive(tmp_path):
    with pytest.raises(DataError, match=r"shard\.shard_size.*got 0"):
        write_source(FailingSource(10**6), tmp_path / "s", shard_size=0, progress=False)
    assert not (tmp_path / "s").exists()


def test_source_errors_leave_nothing(tmp_path):
    with pytest.raises(DataError, match=r"nope.*cifar-10-python\.tar\.gz"):
        write_shards(
            ShardConfig(source="cifar10", path=str(tmp_path / "nope")), tmp_path / "s", progress=False
        )
    (tmp_path / "img" / "train" / "a").mkdir(parents=True)
    (tmp_path / "img" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match=r"train/a: empty class folder"):
        write_shards(
            ShardConfig(source="imagefolder", path=str(tmp_path / "img")), tmp_path / "s", progress=False
        )
    assert not (tmp_path / "s").exists()
