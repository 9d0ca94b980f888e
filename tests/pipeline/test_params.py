"""Validation of params.yaml: every bad value names its key before any work."""

import pytest
import yaml

from pipeline.params import (
    EXPERIMENTS,
    ParamsError,
    apply_overrides,
    config_hash,
    flatten,
    load_params,
    read_params_dict,
    validate_params,
)


def test_default_params_validate():
    params = load_params("params.yaml")
    for name in EXPERIMENTS:
        exp = params.experiment(name)
        assert exp.name == name
        assert exp.total_iterations >= 1


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"train.rf_lzn.latent_dim": 0}, "train.rf_lzn.latent_dim"),
        ({"shard.shard_size": 0}, "shard.shard_size"),
        ({"shard.source": "mnist"}, "shard.source"),
        ({"train.lzn_joint.lr": {"decoder": 1e-3}}, "train.lzn_joint.lr"),
        ({"train.lzn_repr.latent_flow": {"solver": "rk4", "steps": 20}}, "train.lzn_repr.latent_flow.solver"),
        ({"train.rf.lr": {"decoder": -1.0}}, "train.rf.lr.decoder"),
        ({"augment.simclr.crop_scale": [0.9, 0.1]}, "augment.simclr.crop_scale"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_params("params.yaml", overrides=override)


def test_unknown_key_is_named(tmp_path):
    raw = read_params_dict("params.yaml")
    raw["train"]["rf"]["latent_dim"] = 8  # rf has no latent
    with pytest.raises(ParamsError, match=r"train\.rf\.latent_dim"):
        validate_params(raw)
    raw = read_params_dict("params.yaml")
    raw["train"]["rf_lzn"]["typo_key"] = 1
    with pytest.raises(ParamsError, match=r"train\.rf_lzn\.typo_key: unknown key"):
        validate_params(raw)


def test_override_of_missing_key_is_an_error():
    with pytest.raises(ParamsError, match=r"train\.rf_lzn\.latnet_dim"):
        apply_overrides(read_params_dict("params.yaml"), {"train.rf_lzn.latnet_dim": 3})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_hash_and_flatten_are_stable():
    params = load_params("params.yaml")
    exp = params.experiment("rf_lzn")
    assert config_hash(exp) == config_hash(params.experiment("rf_lzn"))
    changed = load_params("params.yaml", overrides={"train.rf_lzn.latent_dim": 64}).experiment("rf_lzn")
    assert config_hash(exp) != config_hash(changed)
    flat = flatten(yaml.safe_load(open("params.yaml")))
    assert flat["train.rf_lzn.lr.encoder"] == pytest.approx(5e-4)
