"""Build the modules of an experiment from validated params, and save/load exported models.

``models/<experiment>/seed_<s>/model.pt`` holds, per module, the raw and EMA state dicts plus the
resolved config that rebuilds the architecture; it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lzn.anchors import LabelAnchors
from lzn.models import ImageEncoder, ResNetEncoder, UNet
from lzn.objectives import ObjectiveSpec
from pipeline.params import CONDITIONAL, MODULES, ExperimentConfig, Params


@dataclass(frozen=True)
class DataShape:
    """What the models need to know about the data (read from the shard manifest)."""

    channels: int
    image_size: int
    num_classes: int

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DataShape:
        c, h, w = manifest["image_shape"]
        if h != w:
            raise ValueError(f"manifest image_shape: square images expected, got {h}x{w}")
        return cls(channels=int(c), image_size=int(h), num_classes=len(manifest["class_names"]))


def encoder_kind(experiment: str) -> str:
    """``resnet`` for the representation-learning experiments (case study 2), else the NCSN++ encoder."""
    return "resnet" if experiment in ("simclr", "lzn_repr") else "ncsnpp"


def build_models(params: Params, exp: ExperimentConfig, shape: DataShape) -> dict[str, nn.Module]:
    """The trainable modules of ``exp`` keyed by module name (``decoder``, ``encoder``, ``labels``)."""
    out: dict[str, nn.Module] = {}
    modules = MODULES[exp.name]
    if "decoder" in modules:
        d = params.model.decoder
        out["decoder"] = UNet(
            in_channels=shape.channels,
            image_size=shape.image_size,
            nf=d.nf,
            ch_mult=d.ch_mult,
            num_res_blocks=d.num_res_blocks,
            attn_resolutions=d.attn_resolutions,
            dropout=d.dropout,
            latent_dim=exp.latent_dim or 0,
            num_classes=shape.num_classes if exp.name in CONDITIONAL else 0,
        )
    if "encoder" in modules:
        if encoder_kind(exp.name) == "resnet":
            r = params.model.resnet
            out["encoder"] = ResNetEncoder(
                in_channels=shape.channels,
                width=r.width,
                layers=r.layers,
                latent_dim=exp.latent_dim,
                proj_hidden=r.proj_hidden,
                bottleneck=r.bottleneck,
                groups=32,  # GroupNorm(32) as the official ResNet; narrower layers use the largest divisor
                imagenet_stem=r.imagenet_stem,
            )
        else:
            e = params.model.encoder
            out["encoder"] = ImageEncoder(
                in_channels=shape.channels,
                image_size=shape.image_size,
                latent_dim=exp.latent_dim,
                nf=e.nf,
                ch_mult=e.ch_mult,
                num_res_blocks=e.num_res_blocks,
                attn_resolutions=e.attn_resolutions,
                dropout=e.dropout,
                head_channels=e.head_channels,
                head_hidden=e.head_hidden,
                head_resolutions=e.head_resolutions,
            )
    if "labels" in modules:
        out["labels"] = LabelAnchors(shape.num_classes, exp.latent_dim)
    return out


def objective_spec(params: Params, exp: ExperimentConfig, shape: DataShape) -> ObjectiveSpec:
    """Map the validated params of ``exp`` onto the method's :class:`ObjectiveSpec`."""
    kwargs: dict[str, Any] = {"name": exp.name, "num_classes": shape.num_classes, "flip_p": params.augment.flip_p}
    if exp.latent_flow is not None:
        kwargs["latent_flow"] = exp.latent_flow.spec()
    if exp.align is not None:
        kwargs.update(align_flow=exp.align_flow(), align_cutoff=exp.align.cutoff, align_log=exp.align.log)
    if exp.temperature is not None:
        kwargs["temperature"] = exp.temperature
    if exp.rf_weight is not None:
        kwargs["rf_weight"] = exp.rf_weight
    if exp.label_weight is not None:
        kwargs["label_weight"] = exp.label_weight
    if exp.name in ("simclr", "lzn_repr"):
        from pipeline.readers import augment_kwargs  # lazily: keeps webdataset out of a model-only import

        kwargs["simclr"] = augment_kwargs(params.augment.simclr)
    return ObjectiveSpec(**kwargs)


# ------------------------------------------------------------------------------------ export
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"


def save_exported(out_dir: Path, state: dict[str, Any], config: dict[str, Any], run: dict[str, Any]) -> None:
    """Write ``model.pt``, ``config.json`` and ``run.json`` into ``out_dir`` (which must not exist yet)."""
    out_dir.mkdir(parents=True)
    torch.save(state, out_dir / MODEL_FILE)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True))


class ModelNotTrainedError(FileNotFoundError):
    """An evaluation asked for a model whose training stage has not run."""


def load_exported(model_dir: Path, *, ema: bool = True) -> tuple[dict[str, nn.Module], dict[str, Any], dict[str, Any]]:
    """Rebuild the modules of an exported model (EMA weights by default), in eval mode.

    Returns ``(modules, config, run)`` where ``config`` is the resolved config saved at export.
    """
    from pipeline.params import validate_params

    path = model_dir / MODEL_FILE
    if not path.is_file():
        experiment = model_dir.parent.name if model_dir.name.startswith("seed_") else model_dir.name
        raise ModelNotTrainedError(
            f"{path}: no trained model; run `dvc repro train@{experiment}` "
            f"(or `python stages/train.py --experiment {experiment}`) first"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    run = json.loads((model_dir / RUN_FILE).read_text()) if (model_dir / RUN_FILE).is_file() else {}
    params = validate_params(config["params"], str(model_dir / CONFIG_FILE))
    exp = params.experiment(config["experiment"])
    shape = DataShape(**config["data_shape"])
    modules = build_models(params, exp, shape)
    key = "ema" if ema else "model"
    for name, module in modules.items():
        module.load_state_dict(state[key][name])
        module.eval()
    return modules, config, run
