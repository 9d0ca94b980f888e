"""Batched image augmentations in pure PyTorch (LZN_SPEC §2.1 random flip, §2.2 SimCLR views).

- :func:`random_flip` — the random horizontal flip of case studies 1 and 3 (LZN_SPEC §2.1, §2.3).
- :func:`simclr_views` — two independent SimCLR-style views for case study 2 (LZN_SPEC §2.2):
  RandomResizedCrop -> horizontal flip -> colour jitter (applied with ``jitter_p``) -> random
  grayscale -> Gaussian blur (applied with ``blur_p``). No solarisation.

Semantics follow torchvision's transforms, but every parameter is drawn **per sample** from an
explicit ``torch.Generator`` (on the generator's device; ``None`` uses torch's global RNG), so the
same generator state gives the same views. Inputs and outputs are ``[B, C, H, W]`` in [-1, 1]; the
ops run in [0, 1] (clamped after each op, as torchvision does for float images) and the result is
mapped back and clamped to [-1, 1].

Channels: brightness, contrast, crop, flip and blur work for any ``C``. Saturation, hue and random
grayscale need colour: for ``C == 3`` they act on RGB (grayscale = ITU-R 601 luma, replicated to 3
channels); for ``C == 1`` the image already is grayscale, so saturation, hue and grayscale are the
identity (their random draws are still made, so the random stream does not depend on ``C``); other
channel counts are rejected when those ops are enabled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "color_jitter",
    "gaussian_blur",
    "random_flip",
    "random_grayscale",
    "resized_crop",
    "sample_crop_boxes",
    "simclr_augment",
    "simclr_views",
]

_LUMA = (0.299, 0.587, 0.114)


def _rand(n: int, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand((n, *shape), generator=generator, device=device)


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point images in [-1, 1], got {x.dtype}")


def random_flip(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Flip each image of ``x [B, C, H, W]`` left-right with probability ``p`` -> ``[B, C, H, W]``.

    ``p = 1`` equals ``torch.flip(x, dims=[-1])``; ``p = 0`` returns ``x`` unchanged. ``B`` uniforms are
    drawn from ``generator`` whatever ``p``.
    """
    _check(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must lie in [0, 1], got {p}")
    flip = (_rand(x.shape[0], generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


# ---------------------------------------------------------------------------------------- crop
def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    attempts: int = 10,
) -> torch.Tensor:
    """Per-sample RandomResizedCrop boxes ``[B, 4]`` (int64 ``top, left, h, w``), torchvision's rule.

    For each sample, up to ``attempts`` candidates with area fraction ~ U(scale) and log aspect ratio
    (w/h) ~ U(log ratio) are drawn; the first that fits is used, else a centre crop of the whole image
    with the aspect ratio clamped into ``ratio``. The offset is uniform over valid positions.
    """
    if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"crop scale and ratio must be increasing positive pairs, got {scale}, {ratio}")
    area = float(height * width)
    u = _rand(batch, generator, attempts, 4)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(ok.to(torch.int8), dim=1)  # first fitting attempt (0 if none)
    idx = torch.arange(batch, device=ok.device)
    w, h, any_ok = w[idx, first], h[idx, first], ok.any(dim=1)
    uy, ux = u[idx, first, 2], u[idx, first, 3]
    # fallback: centre crop with the aspect ratio clamped into ``ratio``
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = height, int(round(height * ratio[1]))
    else:
        fw, fh = width, height
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    top = torch.floor(uy * (height - h + 1).to(uy.dtype)).long().clamp(max=height - h)
    left = torch.floor(ux * (width - w + 1).to(ux.dtype)).long().clamp(max=width - w)
    top = torch.where(any_ok, top, (height - h) // 2)
    left = torch.where(any_ok, left, (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop ``boxes [B, 4]`` (``top, left, h, w``) out of ``x [B, C, H, W]`` and resize back to ``H x W``.

    Bilinear with half-pixel centres, sampling clamped to the crop: per sample it equals
    ``F.interpolate(x[b:b+1, :, top:top+h, left:left+w], (H, W), mode="bilinear", align_corners=False)``
    (torchvision's crop + resize for an upscaling crop), done in one batched ``grid_sample``.
    """
    _check(x)
    B, _, H, W = x.shape
    b = boxes.to(device=x.device, dtype=x.dtype)
    top, left, h, w = (t.view(B, 1) for t in b.unbind(1))
    # source pixel coordinate of each output pixel centre, clamped into the crop (as interpolate does)
    xs = (torch.arange(W, device=x.device, dtype=x.dtype) + 0.5) * (w / W) - 0.5
    ys = (torch.arange(H, device=x.device, dtype=x.dtype) + 0.5) * (h / H) - 0.5
    xs = torch.minimum(xs.clamp_min(0), w - 1) + left  # [B, W]
    ys = torch.minimum(ys.clamp_min(0), h - 1) + top  # [B, H]
    gx = ((2 * xs + 1) / W - 1).view(B, 1, W).expand(B, H, W)
    gy = ((2 * ys + 1) / H - 1).view(B, H, 1).expand(B, H, W)
    grid = torch.stack([gx, gy], dim=-1)  # [B, H, W, 2], normalised (x, y)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# -------------------------------------------------------------------------------------- colour
def _gray(x01: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, 1, H, W]`` luma (C == 3) or the channel mean."""
    if x01.shape[1] == 3:
        r, g, b = x01.unbind(1)
        return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
    return x01.mean(dim=1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0, 1)


def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * f.view(-1, 1, 1, 1)).clamp(0, 1)


def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, f)


def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    return _blend(x, _gray(x), f)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hr = ((g - b) / safe) % 6
    hg = (b - r) / safe + 2
    hb = (r - g) / safe + 4
    h = torch.where(maxc == r, hr, torch.where(maxc == g, hg, hb))
    h = torch.where(delta > 0, h / 6.0, torch.zeros_like(h)) % 1.0
    return torch.stack([h, s, maxc], dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    h6 = (h % 1.0) * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    # rows: sector 0..5 -> (r, g, b)
    r = torch.stack([v, q, p, p, t, v], dim=1).gather(1, i.unsqueeze(1)).squeeze(1)
    g = torch.stack([t, v, v, q, p, p], dim=1).gather(1, i.unsqueeze(1)).squeeze(1)
    b = torch.stack([p, p, t, v, v, q], dim=1).gather(1, i.unsqueeze(1)).squeeze(1)
    return torch.stack([r, g, b], dim=1)


def _hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    hsv = _rgb_to_hsv(x)
    hsv = torch.cat([(hsv[:, :1] + f.view(-1, 1, 1, 1)) % 1.0, hsv[:, 1:]], dim=1)
    return _hsv_to_rgb(hsv).clamp(0, 1)


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


def _needs_colour(x: torch.Tensor, what: str) -> None:
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{what} needs 1- or 3-channel images, got {x.shape[1]} channels")


def _jitter01(
    x01: torch.Tensor,
    p: float,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """ColorJitter on ``[0, 1]`` images, applied per sample with probability ``p``, ops in a random
    per-sample order (as torchvision's ``ColorJitter`` inside ``RandomApply``)."""
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue must lie in [0, 0.5], got {hue}")
    if saturation > 0 or hue > 0:
        _needs_colour(x01, "colour jitter (saturation/hue)")
    B = x01.shape[0]
    u = _rand(B, generator, 9).to(x01.device)
    apply = u[:, 0] < p
    factors = (
        max(0.0, 1 - brightness) + (1 + brightness - max(0.0, 1 - brightness)) * u[:, 1],
        max(0.0, 1 - contrast) + (1 + contrast - max(0.0, 1 - contrast)) * u[:, 2],
        max(0.0, 1 - saturation) + (1 + saturation - max(0.0, 1 - saturation)) * u[:, 3],
        -hue + 2 * hue * u[:, 4],
    )
    order = torch.argsort(u[:, 5:9], dim=1)  # [B, 4] a random permutation of the 4 ops per sample
    enabled = (brightness > 0, contrast > 0, saturation > 0, hue > 0)
    out = x01.clone()
    for step in range(4):
        for op, fn in enumerate(_JITTER_OPS):
            if not enabled[op]:
                continue
            sel = (apply & (order[:, step] == op)).nonzero().squeeze(1)
            if sel.numel():
                out[sel] = fn(out[sel], factors[op][sel])
    return out


def color_jitter(
    x: torch.Tensor,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float = 1.0,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Random brightness/contrast/saturation/hue ``[B, C, H, W] -> [B, C, H, W]`` in [-1, 1].

    Factors are torchvision's: brightness/contrast/saturation ~ U[max(0, 1 - v), 1 + v], hue shift
    ~ U[-hue, hue] (fraction of a turn); the four ops run in a random order per sample; the whole
    jitter is applied to each sample with probability ``p``. Saturation and hue are the identity for
    1-channel images.
    """
    _check(x)
    y = _jitter01((x + 1) / 2, p, brightness, contrast, saturation, hue, generator)
    return (y * 2 - 1).clamp(-1, 1)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Replace each RGB image by its luma (replicated to 3 channels) with probability ``p``.

    1-channel images are returned unchanged.
    """
    _check(x)
    _needs_colour(x, "random grayscale")
    gray = (_rand(x.shape[0], generator) < p).to(x.device)
    if x.shape[1] == 1:
        return x
    g = _gray((x + 1) / 2) * 2 - 1
    return torch.where(gray[:, None, None, None], g.expand_as(x), x)


# ---------------------------------------------------------------------------------------- blur
def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Blur each image of ``x [B, C, H, W]`` with its own ``sigma [B]`` and an odd ``kernel`` size.

    Separable Gaussian weights ``exp(-d^2 / (2 sigma^2))`` normalised over ``d in [-k//2, k//2]``,
    reflect padding (replicate when the image is too small to reflect), as torchvision's
    ``GaussianBlur``.
    """
    _check(x)
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel size must be odd and >= 1, got {kernel}")
    B, C, H, W = x.shape
    if kernel == 1:
        return x
    half = kernel // 2
    d = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(device=x.device, dtype=x.dtype).clamp_min(1e-6).view(B, 1)
    k1 = torch.exp(-(d.view(1, -1) ** 2) / (2 * s**2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)  # [B, k]
    k1 = k1.repeat_interleave(C, dim=0)  # [B*C, k]
    mode = "reflect" if half < min(H, W) else "replicate"
    y = F.pad(x.reshape(1, B * C, H, W), (half, half, half, half), mode=mode)
    y = F.conv2d(y, k1.view(B * C, 1, 1, kernel), groups=B * C)
    y = F.conv2d(y, k1.view(B * C, 1, kernel, 1), groups=B * C)
    return y.view(B, C, H, W)


# -------------------------------------------------------------------------------------- SimCLR
def simclr_augment(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None,
    crop_scale: tuple[float, float] = (0.5, 1.0),
    crop_ratio: tuple[float, float] = (0.75, 4 / 3),
    flip_p: float = 0.5,
    jitter_p: float = 0.8,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    grayscale_p: float = 0.2,
    blur_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 1.0),
    blur_kernel: int = 3,
) -> torch.Tensor:
    """One SimCLR view of ``x [B, C, H, W]`` in [-1, 1] -> ``[B, C, H, W]`` in [-1, 1] (LZN_SPEC §2.2).

    Random resized crop (area fraction ``crop_scale``, aspect ``crop_ratio``, back to ``H x W``) ->
    flip (``flip_p``) -> colour jitter (``jitter_p``; ``brightness``, ``contrast``, ``saturation``,
    ``hue``) -> grayscale (``grayscale_p``) -> Gaussian blur (``blur_p``; ``blur_kernel``, sigma ~
    U(``blur_sigma``)). The paper-scale values are LZN_SPEC §2.2 (kernel 23 for 224², jitter 0.8/0.2);
    the defaults are scaled for 8x8 images.
    """
    _check(x)
    B, C, H, W = x.shape
    if C not in (1, 3) and (saturation > 0 or hue > 0 or grayscale_p > 0):
        _needs_colour(x, "SimCLR colour augmentation")
    boxes = sample_crop_boxes(B, H, W, tuple(crop_scale), tuple(crop_ratio), generator)
    y = resized_crop(x, boxes)
    y = random_flip(y, flip_p, generator)
    y01 = _jitter01((y + 1) / 2, jitter_p, brightness, contrast, saturation, hue, generator)
    gray = (_rand(B, generator) < grayscale_p).to(x.device)
    if C == 3:
        y01 = torch.where(gray[:, None, None, None], _gray(y01).expand_as(y01), y01)
    u = _rand(B, generator, 2).to(x.device)
    blur = u[:, 0] < blur_p
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u[:, 1]
    if blur.any():
        y01 = torch.where(blur[:, None, None, None], gaussian_blur(y01, sigma, blur_kernel), y01)
    return (y01 * 2 - 1).clamp(-1, 1)


def simclr_views(
    x: torch.Tensor, *, generator: torch.Generator | None, **kwargs: float | tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent SimCLR views ``(v1, v2)``, each ``[B, C, H, W]`` in [-1, 1]; ``kwargs`` are
    :func:`simclr_augment`'s (the second view uses the generator's state after the first)."""
    return simclr_augment(x, generator=generator, **kwargs), simclr_augment(x, generator=generator, **kwargs)
