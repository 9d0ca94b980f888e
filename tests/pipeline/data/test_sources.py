"""Raw source readers: digits, cifar10 (archive and folder), imagefolder; their errors."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipeline.data.sources import DataError, open_source, read_cifar10, read_digits, read_imagefolder
from pipeline.params import ParamsError, ShardConfig, apply_overrides, read_params_dict, validate_params

REPO = Path(__file__).resolve().parents[3]
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


def save(path, array, fmt="PNG", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
    img.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


# -------------------------------------------------------------------------------------- digits
def test_digits_pixels_labels_and_split():
    d = load_digits()
    want = np.rint(d.images * 255 / 16).astype(np.uint8)
    src = read_digits(0.2, seed=0)
    assert src.info.shape == (1, 8, 8) and src.info.class_names == tuple(str(i) for i in range(10))
    assert (src.size("train"), src.size("test")) == (1437, 360)
    seen = []
    for split in ("train", "test"):
        for s in src.samples(split):
            i = s.meta["index"]
            seen.append(i)
            assert s.key == f"{split}-{i:07d}"
            assert s.image.dtype == np.uint8 and s.image.shape == (8, 8)
            np.testing.assert_array_equal(s.image, want[i])
            assert s.label == d.target[i]
    assert sorted(seen) == list(range(1797))  # disjoint and complete
    assert want.max() == 255 and int(want[0][0, 2]) == round(5 * 255 / 16) == 80  # 0..16 -> 0..255
    # stratified: every class keeps its share within one sample
    test_counts = np.bincount(src.labels("test"), minlength=10)
    assert np.all(np.abs(test_counts - np.bincount(d.target) * 0.2) <= 1)


def test_digits_split_is_seeded():
    a, b, c = read_digits(0.2, 0), read_digits(0.2, 0), read_digits(0.2, 1)
    keys = lambda s: [x.key for x in s.samples("test")]  # noqa: E731
    assert keys(a) == keys(b) and keys(a) != keys(c)
    assert read_digits(0.5, 0).size("test") == 899  # ceil(0.5 * 1797), as scikit-learn rounds


# ------------------------------------------------------------------------------------- cifar10
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


# --------------------------------------------------------------------------------- imagefolder
def make_folder(root, rng, size=(10, 12), jpeg=True):
    """train/{cat,dog}, test/{cat,dog}: RGB PNGs (+ one JPEG); returns {relpath: array}."""
    files = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("dog", "cat"):  # written unsorted on purpose
            for i in range(n):
                a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                ext = "jpg" if (jpeg and i == 0) else "png"
                p = root / split / cls / f"{i}.{ext}"
                save(p, a, "JPEG" if ext == "jpg" else "PNG")
                files[f"{split}/{cls}/{i}.{ext}"] = a
    return files


def test_imagefolder_png_exact_jpeg_as_pil(tmp_path):
    rng = np.random.default_rng(0)
    files = make_folder(tmp_path, rng)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    src = read_imagefolder(tmp_path)
    assert src.info.class_names == ("cat", "dog") and src.info.shape == (3, 12, 10)
    assert (src.size("train"), src.size("test")) == (6, 4)
    for split in ("train", "test"):
        for s in src.samples(split):
            rel = s.meta["file"]
            assert s.label == ("cat", "dog").index(rel.split("/")[1])
            if rel.endswith(".png"):
                np.testing.assert_array_equal(s.image, files[rel])
            else:
                np.testing.assert_array_equal(s.image, np.asarray(Image.open(tmp_path / rel).convert("RGB")))
                assert not np.array_equal(s.image, files[rel])  # JPEG is lossy: compared with PIL's decode


def test_imagefolder_resize_center_crop(tmp_path):
    rng = np.random.default_rng(1)
    make_folder(tmp_path, rng, size=(20, 12), jpeg=False)
    src = read_imagefolder(tmp_path, image_size=8)
    assert src.info.shape == (3, 8, 8)
    s = src.read("train", 0)
    img = Image.open(tmp_path / s.meta["file"])
    ref = img.resize((int(8 * 20 / 12), 8), Image.BICUBIC)  # shorter side 12 -> 8, longer 20 -> 13
    left = int(round((ref.size[0] - 8) / 2))
    ref = np.asarray(ref.crop((left, 0, left + 8, 8)))
    np.testing.assert_array_equal(s.image, ref)


def test_imagefolder_grayscale_stays_one_channel_and_val_folder(tmp_path):
    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            save(tmp_path / split / cls / "x.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    src = read_imagefolder(tmp_path)
    assert src.info.channels == 1 and src.read("test", 0).image.shape == (6, 6)
    # one colour image turns the whole dataset RGB (grayscale images are replicated)
    save(tmp_path / "train" / "a" / "y.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    src = read_imagefolder(tmp_path)
    assert src.info.channels == 3
    gray = np.asarray(Image.open(tmp_path / "train" / "a" / "x.png"))
    np.testing.assert_array_equal(src.read("train", 0).image, np.stack([gray] * 3, -1))


def test_imagefolder_errors(tmp_path):
    rng = np.random.default_rng(3)
    with pytest.raises(DataError, match=r"shard\.path.*root/train/<class>"):
        read_imagefolder("")
    with pytest.raises(DataError, match=r"missing.*folder not found.*root/train/<class>"):
        read_imagefolder(tmp_path / "missing")
    make_folder(tmp_path, rng, jpeg=False)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=r"train/empty: empty class folder"):
        read_imagefolder(tmp_path)
    (tmp_path / "train" / "empty").rmdir()
    save(tmp_path / "test" / "cat" / "big.png", rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"big\.png: image size 5x5 differs.*shard\.image_size"):
        read_imagefolder(tmp_path)
    assert read_imagefolder(tmp_path, image_size=4).info.shape == (3, 4, 4)
    (tmp_path / "test" / "cat" / "big.png").unlink()
    save(
        tmp_path / "test" / "cat" / "alpha.png",
        rng.integers(0, 256, (12, 10, 4), dtype=np.uint8),
        mode="RGBA",
    )
    with pytest.raises(DataError, match=r"alpha\.png: unsupported image mode 'RGBA'"):
        read_imagefolder(tmp_path)
    (tmp_path / "test" / "cat" / "alpha.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"alpha\.png: not a readable image"):
        read_imagefolder(tmp_path)
    (tmp_path / "test" / "cat" / "alpha.png").unlink()
    save(tmp_path / "test" / "cow" / "0.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"cow: class 'cow' has no folder"):
        read_imagefolder(tmp_path)


def test_unknown_source_is_a_params_error():
    raw = read_params_dict(REPO / "params.yaml")
    with pytest.raises(ParamsError, match=r"shard\.source.*'mnist'"):
        validate_params(apply_overrides(raw, {"shard.source": "mnist"}), "params.yaml")
    with pytest.raises(ParamsError, match=r"shard\.shard_size"):
        validate_params(apply_overrides(raw, {"shard.shard_size": 0}), "params.yaml")


def test_open_source_dispatch(tmp_path):
    assert open_source(ShardConfig()).info.name == "digits"
    assert open_source(ShardConfig(image_size=8)).info.shape == (1, 8, 8)
    with pytest.raises(
        DataError, match=r"shard\.image_size: .*digits images are 8x8, so use 0 or 8 \(got 16\)"
    ):
        open_source(ShardConfig(image_size=16))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        open_source(ShardConfig(source="cifar10", path=str(tmp_path / "x")))
