"""The SimCLR augmentation of ``params.yaml`` (``augment.simclr``) as arguments of :mod:`lzn.augment`.

The augmentations themselves are pure PyTorch in :func:`lzn.augment.simclr_augment` (applied to
batches in [-1, 1] on the training device); this module only translates the validated config
(:class:`pipeline.params.SimCLRAugmentConfig`) into its keyword arguments. It imports nothing heavy
(no webdataset), so a model-only import can use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["augment_kwargs"]


def augment_kwargs(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`lzn.augment.simclr_views` from a ``SimCLRAugmentConfig``.

    Pairs (YAML lists, e.g. ``crop_scale``) become tuples; every other value is passed as it is.
    """
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.model_dump().items()}
