"""`pipeline.data.augment`: the SimCLR augmentation config as the arguments of `lzn.augment.simclr_views`."""

from __future__ import annotations

import inspect

import torch

from lzn.augment import simclr_augment, simclr_views
from pipeline.data.augment import augment_kwargs
from pipeline.params import SimCLRAugmentConfig


def test_augment_kwargs_match_simclr_views():
    cfg = SimCLRAugmentConfig()
    kw = augment_kwargs(cfg)
    params = set(inspect.signature(simclr_augment).parameters) - {"x", "generator"}  # simclr_views passes them on
    assert set(kw) == params
    g = torch.Generator().manual_seed(0)
    v1, v2 = simclr_views(torch.rand(4, 1, 8, 8) * 2 - 1, generator=g, **kw)
    assert v1.shape == v2.shape == (4, 1, 8, 8)
