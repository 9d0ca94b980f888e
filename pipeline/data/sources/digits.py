"""Source ``digits``: scikit-learn's bundled 8x8 ``load_digits`` images, no download.

Values 0..16 are mapped to uint8 0..255 by ``round(v * 255 / 16)``; train/test come from a seeded,
stratified split with ``shard.test_fraction``. The key/index of a sample is its row in
``load_digits()``.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.sources.base import ArraySource, Sample, sample_key
from pipeline.errors import DataError

__all__ = ["read_digits"]


def read_digits(test_fraction: float = 0.2, seed: int = 0) -> ArraySource:
    """scikit-learn's ``load_digits`` (1797 8x8 grayscale images), seeded stratified split.

    Pixel values 0..16 become uint8 ``round(v * 255 / 16)``. The key/index of a sample is its row
    in ``load_digits()``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"shard.test_fraction: must lie in (0, 1), got {test_fraction}")
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # [1797, 8, 8]
    target = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(target)), test_size=test_fraction, stratify=target, random_state=seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    splits = {"train": train_idx, "test": test_idx}
    return _IndexedArraySource(
        name="digits",
        description=(
            f"scikit-learn load_digits: {len(target)} 8x8 grayscale images, 10 classes, values 0..16 "
            f"scaled to 0..255; stratified split test_fraction={test_fraction} seed={seed}"
        ),
        class_names=[str(int(c)) for c in digits.target_names],
        images=images,
        labels=target,
        splits=splits,
    )


class _IndexedArraySource(ArraySource):
    """An :class:`ArraySource` whose splits are index subsets of one array (keys = global rows)."""

    def __init__(self, name, description, class_names, images, labels, splits) -> None:
        super().__init__(
            name,
            description,
            class_names,
            {s: (images[idx], labels[idx]) for s, idx in splits.items()},
        )
        self._rows = {s: np.asarray(idx) for s, idx in splits.items()}

    def read(self, split: str, index: int) -> Sample:
        sample = super().read(split, index)
        row = int(self._rows[split][index])
        meta = dict(sample.meta, index=row)
        return Sample(sample_key(split, row), sample.image, sample.label, meta)
