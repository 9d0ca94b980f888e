"""Source `digits`: pixels, labels and the seeded stratified split."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from pipeline.data.sources.digits import read_digits


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
