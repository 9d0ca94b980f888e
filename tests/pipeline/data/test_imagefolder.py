"""Source `imagefolder`: PNG exact / JPEG as PIL decodes, resize + centre crop, grayscale, its errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.data.sources.imagefolder import read_imagefolder
from pipeline.errors import DataError


def save(path, array, fmt="PNG", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
    img.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


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
