"""Batched augmentations: flip, resized crop, colour jitter, grayscale, blur, SimCLR views."""

from __future__ import annotations

import colorsys
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lzn import augment
from lzn.augment import (
    color_jitter,
    gaussian_blur,
    random_flip,
    random_grayscale,
    resized_crop,
    sample_crop_boxes,
    simclr_augment,
    simclr_views,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b=6, c=3, h=8, w=8, seed=0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed)) * 2 - 1


NO_COLOUR = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def test_flip_p1_is_torch_flip_and_p0_identity():
    x = images()
    assert torch.equal(random_flip(x, 1.0, gen()), torch.flip(x, dims=[-1]))
    assert torch.equal(random_flip(x, 0.0, gen()), x)
    y = random_flip(images(b=64), 0.5, gen(1))
    x = images(b=64)
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(64)])
    same = torch.tensor([torch.equal(y[i], x[i]) for i in range(64)])
    assert bool((flipped | same).all()) and 10 < int(flipped.sum()) < 54
    assert torch.equal(random_flip(x, 0.5, gen(1)), random_flip(x, 0.5, gen(1)))
    with pytest.raises(ValueError):
        random_flip(x, 1.5, gen())


def test_resized_crop_matches_interpolate():
    x = images(b=4, c=3, h=8, w=10)
    boxes = torch.tensor([[0, 0, 8, 10], [1, 2, 5, 6], [3, 0, 5, 4], [0, 7, 2, 3]])
    y = resized_crop(x, boxes)
    assert torch.allclose(y[0], x[0], atol=1e-6)
    for b, (t, left, h, w) in enumerate(boxes.tolist()):
        ref = F.interpolate(
            x[b : b + 1, :, t : t + h, left : left + w], size=(8, 10), mode="bilinear", align_corners=False
        )
        assert torch.allclose(y[b : b + 1], ref, atol=1e-5), b


def test_crop_boxes_follow_scale_and_ratio():
    boxes = sample_crop_boxes(500, 8, 8, (0.5, 1.0), (0.75, 4 / 3), gen())
    top, left, h, w = boxes.T
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 8) & (left + w <= 8) & (h >= 1) & (w >= 1)).all())
    area = (h * w).float() / 64
    assert area.min() >= 0.35 and area.max() <= 1.0  # 0.5..1 up to rounding of each side
    assert len({tuple(b) for b in boxes.tolist()}) > 10
    big = sample_crop_boxes(500, 32, 32, (0.08, 1.0), (0.75, 4 / 3), gen())
    ratio = big[:, 3].float() / big[:, 2].float()
    assert ratio.min() > 0.6 and ratio.max() < 1.6 and (big[:, 2] * big[:, 3]).float().min() / 1024 < 0.2
    # impossible scale -> torchvision's fallback: the whole image (ratio within range)
    full = sample_crop_boxes(5, 8, 8, (2.0, 3.0), (0.75, 4 / 3), gen())
    assert full.tolist() == [[0, 0, 8, 8]] * 5


def test_hue_saturation_against_colorsys():
    x01 = torch.rand(1, 3, 4, 4, generator=gen(3))
    x = x01 * 2 - 1
    # hue only, p=1: compare each pixel's shift with colorsys for the drawn factor (recover it from one pixel)
    y = color_jitter(x, brightness=0, contrast=0, saturation=0, hue=0.3, p=1.0, generator=gen(4))
    y01 = (y + 1) / 2
    r, g, b = x01[0, :, 0, 0].tolist()
    h0 = colorsys.rgb_to_hsv(r, g, b)[0]
    h1 = colorsys.rgb_to_hsv(*y01[0, :, 0, 0].tolist())[0]
    shift = (h1 - h0) % 1.0
    for i in range(4):
        for j in range(4):
            hh, ss, vv = colorsys.rgb_to_hsv(*x01[0, :, i, j].tolist())
            want = colorsys.hsv_to_rgb((hh + shift) % 1.0, ss, vv)
            assert torch.allclose(y01[0, :, i, j], torch.tensor(want), atol=1e-4)
    # saturation 0 factor -> luma image; hue 0 and all-zero jitter -> identity
    assert torch.allclose(
        color_jitter(x, brightness=0, contrast=0, saturation=0, hue=0, generator=gen()), x, atol=1e-6
    )


def test_brightness_scales_each_image_within_range():
    x = images(b=16) * 0.2 - 0.5  # dark enough to never clip
    y = color_jitter(x, brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0, generator=gen())
    ratio = (y + 1) / (x + 1)
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert per_image.min() >= 0.6 - 1e-5 and per_image.max() <= 1.4 + 1e-5 and per_image.std() > 0.01
    z = color_jitter(x, brightness=0.4, contrast=0, saturation=0, hue=0, p=0.0, generator=gen())
    assert torch.allclose(z, x, atol=1e-6)


def test_contrast_keeps_mean_luma():
    x = images(b=8) * 0.3
    y = color_jitter(x, brightness=0, contrast=0.5, saturation=0, hue=0, p=1.0, generator=gen())
    luma = lambda t: (0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]).mean(dim=(1, 2))  # noqa: E731
    assert torch.allclose(luma(y), luma(x), atol=1e-5) and not torch.allclose(y, x)


def test_grayscale_and_one_channel_behaviour():
    x = images(b=4)
    g = random_grayscale(x, 1.0, gen())
    x01 = (x + 1) / 2
    luma = 0.299 * x01[:, 0] + 0.587 * x01[:, 1] + 0.114 * x01[:, 2]
    assert torch.allclose(g, (luma * 2 - 1).unsqueeze(1).expand_as(x), atol=1e-6)
    assert torch.equal(random_grayscale(x, 0.0, gen()), x)
    x1 = images(c=1)
    assert torch.equal(random_grayscale(x1, 1.0, gen()), x1)
    # saturation and hue do nothing to one channel
    assert torch.allclose(
        color_jitter(x1, brightness=0, contrast=0, saturation=0.9, hue=0.5, generator=gen()), x1
    )
    with pytest.raises(ValueError, match="1- or 3-channel"):
        random_grayscale(images(c=2), 0.5, gen())


def test_gaussian_blur_matches_reference():
    x = images(b=2, c=3, h=7, w=9)
    sigma = torch.tensor([0.5, 1.5])
    y = gaussian_blur(x, sigma, 5)
    for b in range(2):
        d = torch.arange(-2, 3, dtype=torch.float32)
        k = torch.exp(-(d**2) / (2 * sigma[b] ** 2))
        k = k / k.sum()
        k2 = (k[:, None] * k[None, :]).expand(3, 1, 5, 5)
        ref = F.conv2d(F.pad(x[b : b + 1], (2, 2, 2, 2), mode="reflect"), k2, groups=3)
        assert torch.allclose(y[b : b + 1], ref, atol=1e-5)
    const = torch.full((2, 1, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(const, sigma, 3), const, atol=1e-6)
    assert torch.allclose(gaussian_blur(x, torch.tensor([1e-3, 1e-3]), 3), x, atol=1e-6)
    assert gaussian_blur(x, sigma, 3).var() < x.var()
    tiny = images(b=1, c=1, h=2, w=2)
    assert gaussian_blur(tiny, torch.tensor([1.0]), 7).shape == tiny.shape  # replicate padding fallback


@pytest.mark.parametrize("channels", [1, 3])
def test_simclr_views_shapes_ranges_and_difference(channels):
    x = images(b=16, c=channels)
    v1, v2 = simclr_views(x, generator=gen())
    for v in (v1, v2):
        assert v.shape == x.shape and v.dtype == x.dtype
        assert v.min() >= -1 and v.max() <= 1 and torch.isfinite(v).all()
    assert not torch.allclose(v1, v2) and not torch.allclose(v1, x)
    w1, w2 = simclr_views(x, generator=gen())
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    u1, _ = simclr_views(x, generator=gen(1))
    assert not torch.equal(u1, v1)


def test_simclr_identity_when_disabled():
    x = images(b=5)
    y = simclr_augment(
        x, generator=gen(), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, **NO_COLOUR
    )
    assert torch.allclose(y, x, atol=1e-5)
    y = simclr_augment(
        x, generator=gen(), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, **NO_COLOUR
    )
    assert torch.allclose(y, x.flip(-1), atol=1e-5)
    z = simclr_augment(
        x,
        generator=gen(),
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.0,
        jitter_p=0.0,
        grayscale_p=1.0,
        blur_p=0.0,
    )
    assert torch.allclose(z[:, 0], z[:, 1], atol=1e-6)


def test_paper_scale_settings_run():
    """LZN_SPEC §2.2 at a small size: jitter 0.8/0.8/0.8/0.2, blur kernel 23 always, crop 0.08..1."""
    x = images(b=2, c=3, h=32, w=32)
    v1, v2 = simclr_views(
        x,
        generator=gen(),
        crop_scale=(0.08, 1.0),
        brightness=0.8,
        contrast=0.8,
        saturation=0.8,
        hue=0.2,
        blur_p=1.0,
        blur_sigma=(0.1, 2.0),
        blur_kernel=23,
    )
    assert v1.shape == x.shape and v1.abs().max() <= 1 and not torch.equal(v1, v2)
    assert not math.isnan(float(v1.sum()))


def test_module_is_pure_torch():
    src = Path(augment.__file__).read_text()
    imported = set(re.findall(r"^\s*(?:import|from)\s+([\w.]+)", src, flags=re.M))
    assert {m.split(".")[0] for m in imported} <= {"__future__", "math", "torch"}, imported
    assert "print(" not in src
