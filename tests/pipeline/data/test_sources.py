"""The source registry: `open_source` dispatch, its errors, and unknown sources caught by params validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.sources import SOURCES, open_source
from pipeline.errors import DataError
from pipeline.params import ParamsError, ShardConfig, apply_overrides, read_params_dict, validate_params

REPO = Path(__file__).resolve().parents[3]


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


def test_registry_names_every_source_and_rejects_others():
    assert list(SOURCES) == ["digits", "cifar10", "imagefolder"]
    config = ShardConfig().model_copy(update={"source": "mnist"})  # past validation, as a caller could
    with pytest.raises(
        DataError, match=r"shard\.source: unknown source 'mnist'; expected digits, cifar10 or imagefolder"
    ):
        open_source(config)
