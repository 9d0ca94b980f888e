"""The reference classifier: the digits feature network behind FID / IS / precision / recall.

Trains :class:`lzn.models.reference.ReferenceClassifier` on the real training split (read from the
shards) and writes ``models/refnet/`` atomically:

- ``model.pt``    ``{"state_dict", "hparams"}`` (loads with ``weights_only=True``,
  :func:`pipeline.evaluate.feature_nets.load_reference_classifier`);
- ``refnet.json`` test/train accuracy, the params and the data description.

Numbers computed with this network are comparable only between runs that share its weights
(every FID report records ``feature_network``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from lzn.models.reference import train_reference_classifier
from pipeline.data.images import from_uint8
from pipeline.data.loaders import read_split
from pipeline.data.manifest import load_manifest
from pipeline.errors import DataError, ModelNotTrainedError
from pipeline.evaluate.feature_nets import (
    FeatureNetwork,
    load_reference_classifier,
    save_reference_classifier,
)
from pipeline.evaluate.seeds import dataset_name, progress
from pipeline.io import atomic_dir, write_json
from pipeline.params import RefnetConfig
from pipeline.paths import Layout

__all__ = ["load_refnet", "refnet_path", "train_refnet"]

MODEL_FILE = "model.pt"
INFO_FILE = "refnet.json"


def refnet_path(root: Path) -> Path:
    return Layout(root).refnet / MODEL_FILE


def _to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return from_uint8(images_u8)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1024) -> float:
    if images.shape[0] == 0:
        return float("nan")
    correct = 0
    for b0 in range(0, images.shape[0], batch):
        logits = model(images[b0 : b0 + batch])
        correct += int((logits.argmax(dim=1) == labels[b0 : b0 + batch]).sum())
    return correct / images.shape[0]


def train_refnet(cfg: RefnetConfig, shard_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Train the reference classifier on ``shard_dir``'s train split; write ``out_dir`` atomically.

    Returns the info record (``test_accuracy``, ``train_accuracy``, ``seconds``, ...).
    """
    manifest = load_manifest(shard_dir)
    num_classes = len(manifest["class_names"])
    x_tr, y_tr, _ = read_split(shard_dir, "train")
    x_te, y_te, _ = read_split(shard_dir, "test")
    x_tr, x_te = _to_float(x_tr), _to_float(x_te)
    start = time.perf_counter()
    bar = progress(total=cfg.epochs, desc="refnet epochs")

    def on_epoch(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        model = train_reference_classifier(
            x_tr, y_tr, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
            num_classes=num_classes, width=cfg.width, on_epoch=on_epoch,
        )
    finally:
        bar.close()
    info = {
        "test_accuracy": _accuracy(model, x_te, y_te),
        "train_accuracy": _accuracy(model, x_tr, y_tr),
        "train_count": int(x_tr.shape[0]),
        "test_count": int(x_te.shape[0]),
        "feature_dim": int(model.feature_dim),
        "dataset": dataset_name(manifest),
        "seconds": time.perf_counter() - start,
        "params": cfg.model_dump(mode="json"),
    }
    with atomic_dir(out_dir) as tmp:
        save_reference_classifier(model, tmp / MODEL_FILE)
        write_json(tmp / INFO_FILE, info)
    return info


def load_refnet(root: Path, shape: tuple[int, int, int] | None = None, *, batch_size: int = 512) -> FeatureNetwork:
    """The trained reference classifier of ``root`` as a :class:`FeatureNetwork`.

    Raises:
        ModelNotTrainedError: ``models/refnet/model.pt`` is missing (run ``dvc repro refnet``).
        ValueError: it was trained on images of another shape than ``shape`` ``(C, H, W)``.
    """
    path = refnet_path(root)
    if not path.is_file():
        raise ModelNotTrainedError(
            f"{path}: reference classifier not found; run `dvc repro refnet` "
            "(or `python stages/refnet.py`) first"
        )
    net = load_reference_classifier(path, batch_size=batch_size)
    model = net.module.model
    if shape is not None:
        c, h, _ = shape
        if (model.in_channels not in (c, 3 if c == 1 else c)) or model.image_size != h:
            raise DataError(
                f"{path}: the reference classifier was trained on {model.in_channels}x{model.image_size}"
                f"x{model.image_size} images but the data are {c}x{h}x{h}; run `dvc repro refnet`"
            )
    return net
