"""What every raw source is: :class:`Source` (random access per split), :class:`Sample`, :class:`SourceInfo`,
and :class:`ArraySource`, a source held in memory (what ``digits`` and ``cifar10`` are, and what tests use).

A source has the splits :data:`SPLITS`; per split, ``size``, ``labels`` and ``read(split, index)``
returning one :class:`Sample` (key, uint8 ``[H, W]`` or ``[H, W, 3]`` array, label, JSON metadata).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import DataError

__all__ = ["SPLITS", "ArraySource", "Sample", "Source", "SourceInfo", "check_split", "sample_key"]

SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class Sample:
    """One image of a source: ``image`` is uint8 ``[H, W]`` (grayscale) or ``[H, W, 3]`` (RGB)."""

    key: str
    image: np.ndarray
    label: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceInfo:
    """What the manifest records about a source."""

    name: str
    description: str
    class_names: tuple[str, ...]
    channels: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(C, H, W)``."""
        return (self.channels, self.height, self.width)


class Source:
    """Random-access view of a source's ``train`` and ``test`` splits."""

    info: SourceInfo

    def __len__(self) -> int:
        return sum(self.size(s) for s in SPLITS)

    def size(self, split: str) -> int:
        raise NotImplementedError

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split, int64 ``[n]`` in source order."""
        raise NotImplementedError

    def read(self, split: str, index: int) -> Sample:
        raise NotImplementedError

    def samples(self, split: str, order: Sequence[int] | None = None) -> Iterator[Sample]:
        """Yield the samples of ``split`` in ``order`` (default: source order)."""
        indices = range(self.size(split)) if order is None else order
        for i in indices:
            yield self.read(split, int(i))


def sample_key(split: str, index: int) -> str:
    """WebDataset key of a sample: ``<split>-<source index, 7 digits>`` (no dots, unique per split)."""
    return f"{split}-{index:07d}"


def check_split(split: str) -> None:
    """Raise a :class:`DataError` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


class ArraySource(Source):
    """A source held in memory: per split, uint8 images ``[n, H, W]`` or ``[n, H, W, 3]`` and labels."""

    def __init__(
        self,
        name: str,
        description: str,
        class_names: Sequence[str],
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        meta: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        shapes = set()
        self._images: dict[str, np.ndarray] = {}
        self._labels: dict[str, np.ndarray] = {}
        for split in SPLITS:
            if split not in splits:
                raise DataError(f"{name}: split {split!r} is missing")
            images, labels = splits[split]
            images = np.asarray(images)
            labels = np.asarray(labels).astype(np.int64).reshape(-1)
            if (
                images.dtype != np.uint8
                or images.ndim not in (3, 4)
                or (images.ndim == 4 and images.shape[3] != 3)
            ):
                raise DataError(
                    f"{name}/{split}: expected uint8 images [n,H,W] or [n,H,W,3], "
                    f"got {images.dtype} {list(images.shape)}"
                )
            if len(images) != len(labels):
                raise DataError(f"{name}/{split}: {len(images)} images but {len(labels)} labels")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
                raise DataError(
                    f"{name}/{split}: labels must lie in 0..{len(class_names) - 1}, "
                    f"got {int(labels.min())}..{int(labels.max())}"
                )
            shapes.add(images.shape[1:])
            self._images[split] = images
            self._labels[split] = labels
        if len(shapes) != 1:
            raise DataError(f"{name}: train and test images differ in shape: {sorted(shapes)}")
        (shape,) = shapes
        self._meta = meta or {}
        self.info = SourceInfo(
            name=name,
            description=description,
            class_names=tuple(class_names),
            channels=1 if len(shape) == 2 else 3,
            height=int(shape[0]),
            width=int(shape[1]),
        )

    def size(self, split: str) -> int:
        check_split(split)
        return len(self._labels[split])

    def labels(self, split: str) -> np.ndarray:
        check_split(split)
        return self._labels[split]

    def images(self, split: str) -> np.ndarray:
        """All images of a split, uint8 ``[n, H, W]`` or ``[n, H, W, 3]``."""
        check_split(split)
        return self._images[split]

    def read(self, split: str, index: int) -> Sample:
        check_split(split)
        meta = {"index": index, "split": split, "source": self.info.name}
        extra = self._meta.get(split)
        if extra:
            meta.update(extra[index])
        return Sample(
            sample_key(split, index), self._images[split][index], int(self._labels[split][index]), meta
        )
