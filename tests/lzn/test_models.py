"""Tests for lzn.models: U-Net decoder, NCSN++ image encoder, GroupNorm ResNet, Classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lzn.models import Classifier, ImageEncoder, ResNetEncoder, UNet
from lzn.models.resnet import BasicBlock, Bottleneck
from lzn.objectives import rf_pair

CIFAR_UNET = dict(nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,), dropout=0.15)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb_(module: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    """Move every parameter off its (partly zero) initialisation so that every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


# ------------------------------------------------------------------------------------------ UNet
@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(in_channels=1, image_size=8), (3, 1, 8, 8)),
        (
            dict(in_channels=3, image_size=32, nf=16, ch_mult=(1, 2, 2), attn_resolutions=(16,)),
            (2, 3, 32, 32),
        ),
    ],
)
def test_unet_output_shape_and_zero_init(kwargs, shape):
    torch.manual_seed(0)
    model = UNet(**kwargs).eval()
    out = model(torch.randn(shape), torch.rand(shape[0]))
    assert out.shape == shape
    # init_scale 0 (variance scale 1e-10): the output starts about 1e5 times smaller than after perturbation
    assert out.abs().max() < 1e-3
    perturb_(model)
    assert model(torch.randn(shape), torch.rand(shape[0])).abs().max() > 1e-1


def test_unet_paper_parameter_counts():
    with torch.device("meta"):
        rf = UNet(3, 32, **CIFAR_UNET)
        rf_lzn = UNet(3, 32, latent_dim=200, **CIFAR_UNET)
        joint = UNet(3, 32, latent_dim=200, num_classes=10, **CIFAR_UNET)
    assert n_params(rf) == 61_804_419  # paper: RF baseline decoder
    assert n_params(rf_lzn) == 61_906_819  # paper: RF+LZN decoder (+200 x 512)
    assert n_params(joint) - n_params(rf_lzn) == 10 * 512


def test_unet_latent_and_label_condition_output_and_get_gradients():
    torch.manual_seed(0)
    model = perturb_(UNet(1, 8, latent_dim=4, num_classes=3)).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    z = torch.randn(2, 4, requires_grad=True)
    y = torch.eye(3)[[0, 2]].requires_grad_(True)
    out = model(x, t, z=z, y_onehot=y)
    out.pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert model.temb_mlp[0].weight.grad[:, 32:].abs().sum() > 0  # the z/y columns of the MLP input
    with torch.no_grad():
        out_z = model(x, t, z=z + 1.0, y_onehot=y)
        out_y = model(x, t, z=z, y_onehot=torch.eye(3)[[1, 1]])
    assert (out_z - out).abs().max() > 1e-4
    assert (out_y - out).abs().max() > 1e-4


def test_unet_time_input_is_clamped_and_broadcast():
    torch.manual_seed(0)
    model = perturb_(UNet(1, 8)).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        a = model(x, torch.ones(2))
        b = model(x, 1.5)
        c = model(x, torch.full((2,), 0.5))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-4


def test_unet_conditioning_errors_name_the_argument():
    model = UNet(1, 8, latent_dim=4, num_classes=3)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    z, y = torch.randn(2, 4), torch.eye(3)[[0, 1]]
    with pytest.raises(ValueError, match="z is required"):
        model(x, t, y_onehot=y)
    with pytest.raises(ValueError, match="z must have shape"):
        model(x, t, z=torch.randn(2, 5), y_onehot=y)
    with pytest.raises(ValueError, match="y_onehot is required"):
        model(x, t, z=z)
    with pytest.raises(ValueError, match="y_onehot must have shape"):
        model(x, t, z=z, y_onehot=torch.eye(4)[[0, 1]])
    with pytest.raises(ValueError, match="z was given"):
        UNet(1, 8)(x, t, z=z)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(2, 3, 8, 8), t, z=z, y_onehot=y)
    with pytest.raises(ValueError, match="image_size"):
        UNet(1, 6, ch_mult=(1, 2, 2))


def test_unet_rf_loss_overfits_fixed_digits_batch():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    images = torch.tensor(load_digits().images[:16], dtype=torch.float32)[:, None] / 8.0 - 1.0
    model = UNet(1, 8)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x_t, t, x0 = rf_pair(images, torch.Generator().manual_seed(1))
    target = images - x0
    losses = []
    for _ in range(30):
        loss = (model(x_t, t) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --------------------------------------------------------------------------------------- encoder
def _hooked_head_outputs(encoder: ImageEncoder, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    outs: list[torch.Tensor] = []
    handles = [h.register_forward_hook(lambda _m, _i, o: outs.append(o)) for h in encoder.heads.values()]
    anchor = encoder(x)
    for handle in handles:
        handle.remove()
    return anchor, outs


def test_encoder_anchor_is_sum_of_heads():
    torch.manual_seed(0)
    enc = perturb_(
        ImageEncoder(1, 8, 6, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,))
    ).eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        anchor, outs = _hooked_head_outputs(enc, x)
        assert len(outs) == len(enc.heads)
        torch.testing.assert_close(anchor, torch.stack(outs).sum(0))
        # silencing one head removes exactly its contribution
        head = enc.heads[str(enc.head_keys[2])]
        head.fc1.weight.zero_()
        head.fc1.bias.zero_()
        torch.testing.assert_close(enc(x), anchor - outs[2])
    assert anchor.shape == (3, 6)


def test_encoder_head_count_matches_skip_maps_and_features_shape():
    # 1 input conv + 3 levels x 2 resblocks + 2 downsamples = 9 skips, + middle = 10 heads
    enc = ImageEncoder(3, 32, 8, nf=8, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,))
    assert enc.num_feature_maps == 10 and len(enc.heads) == 10
    x = torch.randn(2, 3, 32, 32)
    maps = enc.feature_maps(x)
    assert [m.shape[-1] for m in maps] == [32, 32, 32, 16, 16, 16, 8, 8, 8, 8]
    assert enc.features(x).shape == (2, 16) and enc.feature_dim == 16
    # only the 16x16 maps: the first downsample output and the two level-1 resblocks
    enc16 = ImageEncoder(
        3, 32, 8, nf=8, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,), head_resolutions=(16,)
    )
    assert enc16.head_keys == [3, 4, 5]
    assert enc16(x).shape == (2, 8)
    with pytest.raises(ValueError, match="head_resolutions"):
        ImageEncoder(3, 32, 8, nf=8, ch_mult=(1, 2, 2), head_resolutions=(7,))


def test_encoder_paper_parameter_count():
    with torch.device("meta"):
        enc = ImageEncoder(3, 32, 200, **CIFAR_UNET)
    assert len(enc.heads) == 21
    assert n_params(enc) == 49_790_260  # paper: CIFAR10 LZN encoder


# ---------------------------------------------------------------------------------------- ResNet
def test_resnet_groupnorm_only_and_zero_init_last_norm():
    model = ResNetEncoder(3, width=16, layers=(2, 1), latent_dim=16, proj_hidden=32, groups=8)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]
    assert len(blocks) == 3
    for block in blocks:
        assert torch.all(block.last_norm.weight == 0)
        assert torch.all(block.norm1.weight == 1)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    assert model.features(x).shape == (4, 32) and model.feature_dim == 32
    assert model(x).shape == (4, 16)


def test_resnet_maps_input_to_unit_range():
    torch.manual_seed(0)
    model = ResNetEncoder(1, width=8, layers=(1,), latent_dim=8, proj_hidden=8, groups=4)
    u = torch.rand(2, 1, 8, 8)
    expected = model.stages(model.stem(u)).mean(dim=(2, 3))
    torch.testing.assert_close(model.features(2 * u - 1), expected)


def test_resnet_bottleneck_imagenet_stem_shapes_and_resnet50_count():
    small = ResNetEncoder(
        3, width=8, layers=(1, 1), latent_dim=8, proj_hidden=16, bottleneck=True, groups=4, imagenet_stem=True
    )
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert small.features(x).shape == (2, 64) and small(x).shape == (2, 8)
    with torch.device("meta"):
        r50 = ResNetEncoder(
            3,
            width=64,
            layers=(3, 4, 6, 3),
            latent_dim=256,
            proj_hidden=2048,
            bottleneck=True,
            imagenet_stem=True,
        )
        r50_1 = ResNetEncoder(
            3,
            width=64,
            layers=(3, 4, 6, 3),
            latent_dim=256,
            proj_hidden=2048,
            bottleneck=True,
            imagenet_stem=True,
            proj_layers=1,
        )
    assert r50.feature_dim == 2048
    assert r50.backbone_parameters() == 23_508_032  # paper: ResNet-50 backbone
    assert n_params(r50_1) == 24_032_832  # paper total (1-layer head, LZN_SPEC §5.1)
    assert n_params(r50) == 28_231_232  # released 2-layer head


def test_classifier_uses_backbone_features():
    torch.manual_seed(0)
    backbone = ResNetEncoder(1, width=8, layers=(1,), latent_dim=8, proj_hidden=8, groups=4)
    clf = Classifier(backbone, backbone.feature_dim, 10)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    logits = clf(x)
    assert logits.shape == (5, 10)
    torch.testing.assert_close(logits, clf.linear(backbone.features(x)))
    logits.sum().backward()
    assert backbone.stem[0].weight.grad is not None
