"""Source `cifar10` (archive, folder and parent folder): pixel-exact, its errors, the restricted unpickler."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from pipeline.data.sources.cifar10 import read_cifar10
from pipeline.errors import DataError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root, per_batch=(3, 2, 4, 1, 2), test=3, seed=0):
    """A small archive in the real CIFAR-10 python format; returns (folder, tar.gz, train, test)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i + 1}": n for i, n in enumerate(per_batch)} | {"test_batch": test}
    arrays = {}
    for name, n in batches.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        arrays[name] = (data, labels)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {
        b"label_names": [c.encode() for c in CIFAR_CLASSES],
        b"num_cases_per_batch": 10000,
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    train = [arrays[f"data_batch_{i + 1}"] for i in range(len(per_batch))]
    train_x = np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    train_y = np.concatenate([lab for _, lab in train])
    test_x = arrays["test_batch"][0].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    test_y = np.array(arrays["test_batch"][1])
    return folder, archive, (train_x, train_y), (test_x, test_y)


@pytest.mark.parametrize("form", ["archive", "folder", "parent"])
def test_cifar10_pixel_exact(tmp_path, form):
    folder, archive, (tx, ty), (vx, vy) = write_cifar(tmp_path)
    path = {"archive": archive, "folder": folder, "parent": tmp_path}[form]
    src = read_cifar10(path)
    assert src.info.class_names == tuple(CIFAR_CLASSES) and src.info.shape == (3, 32, 32)
    assert (src.size("train"), src.size("test")) == (12, 3)
    for split, (x, y) in (("train", (tx, ty)), ("test", (vx, vy))):
        for i, s in enumerate(src.samples(split)):
            assert s.key == f"{split}-{i:07d}" and s.label == y[i]
            np.testing.assert_array_equal(s.image, x[i])
    # row layout: R plane, then G, then B, each row-major
    raw = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"]
    s = src.read("train", 0)
    assert (
        s.image[0, 1, 0] == raw[0, 1]
        and s.image[1, 0, 1] == raw[0, 1024 + 32]
        and s.image[0, 0, 2] == raw[0, 2048]
    )
    assert src.read("train", 3).meta["file"] == "data_batch_2"


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataError, match=r"shard\.path.*cifar-10-python\.tar\.gz"):
        read_cifar10("")
    with pytest.raises(DataError, match=r"nowhere.*not found.*cifar-10-python\.tar\.gz.*data_batch_1"):
        read_cifar10(tmp_path / "nowhere")
    folder, archive, *_ = write_cifar(tmp_path / "c")
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"test_batch: missing"):
        read_cifar10(folder)
    # truncated archive: named
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.tar\.gz"):
        read_cifar10(cut)


def test_cifar10_unpickler_refuses_code(tmp_path):
    folder, *_ = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [Evil()]}))
    with pytest.raises(DataError, match=r"batches\.meta.*builtins\.eval is not allowed"):
        read_cifar10(folder)
