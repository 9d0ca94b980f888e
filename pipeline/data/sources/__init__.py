"""Readers of the raw image sources that ``stages/shard.py`` turns into WebDataset shards.

Three sources (``shard.source`` in ``params.yaml``), one module each, registered in :data:`SOURCES`:

- ``digits`` (:mod:`.digits`) — scikit-learn's bundled 8x8 ``load_digits`` images (values 0..16,
  mapped to uint8 0..255 by ``round(v * 255 / 16)``), split into train/test by a seeded, stratified
  split with ``shard.test_fraction``.
- ``cifar10`` (:mod:`.cifar10`) — the standard ``cifar-10-python.tar.gz`` archive or its extracted
  ``cifar-10-batches-py/`` folder: the published 50000/10000 split, class names from
  ``batches.meta``. The only place in the project that unpickles anything (restricted to numpy
  arrays and plain containers).
- ``imagefolder`` (:mod:`.imagefolder`) — ``root/train/<class>/*.png|jpg|jpeg`` and
  ``root/test/<class>/...`` (``val`` is accepted in place of ``test``); optional resize of the
  shorter side + centre crop to ``shard.image_size`` (PIL bicubic).

Every source is a :class:`Source` (:mod:`.base`): per split, ``len``, labels, and
``read(split, index)`` returning one :class:`Sample` (key, uint8 ``[H, W]`` or ``[H, W, 3]`` array,
label, JSON metadata). :func:`open_source` opens the one a :class:`pipeline.params.ShardConfig` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.data.sources.base import SPLITS, ArraySource, Sample, Source, SourceInfo, sample_key
from pipeline.data.sources.cifar10 import read_cifar10
from pipeline.data.sources.digits import read_digits
from pipeline.data.sources.imagefolder import IMAGE_EXTENSIONS, ImageFolderSource, read_imagefolder
from pipeline.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCES",
    "SPLITS",
    "ArraySource",
    "ImageFolderSource",
    "Sample",
    "Source",
    "SourceInfo",
    "open_source",
    "read_cifar10",
    "read_digits",
    "read_imagefolder",
    "sample_key",
]

SOURCES: dict[str, Callable[[Any], Source]] = {
    "digits": lambda config: read_digits(config.test_fraction, config.seed),
    "cifar10": lambda config: read_cifar10(config.path),
    "imagefolder": lambda config: read_imagefolder(config.path, config.image_size),
}
"""``shard.source`` -> the opener of that source, given the :class:`pipeline.params.ShardConfig`."""

_RESIZED = frozenset({"imagefolder"})  # the sources that honour shard.image_size; the others have one size


def open_source(config: Any) -> Source:
    """The source named by a :class:`pipeline.params.ShardConfig` (``source``, ``path``, ...)."""
    opener = SOURCES.get(config.source)
    if opener is None:
        names = list(SOURCES)
        raise DataError(
            f"shard.source: unknown source {config.source!r}; expected {', '.join(names[:-1])} or {names[-1]}"
        )
    source = opener(config)
    if config.source not in _RESIZED:
        size = source.info.height
        if config.image_size not in (0, size):
            raise DataError(
                f"shard.image_size: resizing is only done for source imagefolder; {config.source} images "
                f"are {size}x{size}, so use 0 or {size} (got {config.image_size})"
            )
    return source
