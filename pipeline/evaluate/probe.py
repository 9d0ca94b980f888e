"""Linear probe of an encoder experiment on its frozen, extracted features (LZN_SPEC §2.2).

Main protocol: ``Linear(d -> C)`` on the backbone feature (``features/<experiment>/seed_<s>``,
column ``backbone``), trained on the train split and evaluated on the test split -> ``probe_top1``,
``probe_top5``. Extra rows repeat the probe on the ``anchor`` (head output), ``latent_a0`` and
``latent_a1`` columns: the feature-choice ablation of the paper's Fig. 19 (W/o head, W/ head,
W/ latent alpha = 0, W/ latent alpha = 1; there the probe trains without augmentation, as here).

The probe reads precomputed features only; a checksum of every feature tensor is compared before
and after training, so a probe that modified its inputs fails loudly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from lzn.probe import train_linear_probe
from pipeline.errors import DataError
from pipeline.evaluate.extract import read_features
from pipeline.evaluate.seeds import build_report, log_to_run, progress, run_id_of
from pipeline.params import ENCODERS, Params, ProbeConfig
from pipeline.paths import Layout, seed_dir

__all__ = ["FEATURE_ROWS", "PROBE_EXPERIMENTS", "evaluate_probe", "probe_features", "probe_seed"]

PROBE_EXPERIMENTS: tuple[str, ...] = ENCODERS

FEATURE_ROWS: dict[str, str] = {
    "backbone": "",
    "anchor": "_anchor",
    "latent_a0": "_latent_alpha0",
    "latent_a1": "_latent_alpha1",
}
"""Feature column -> suffix of its metric keys (the backbone is the main, unsuffixed row)."""


def tensor_digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def probe_features(
    train: dict[str, Any], test: dict[str, Any], column: str, cfg: ProbeConfig, *, num_classes: int
) -> dict[str, Any]:
    """Train the probe on one feature column; the feature tensors are checked to be unchanged."""
    x_tr, x_te = train[column], test[column]
    before = (tensor_digest(x_tr), tensor_digest(x_te))
    bar = progress(total=cfg.epochs, desc=f"probe {column}")

    def on_epoch(epoch: int, record: dict) -> None:
        bar.update(1)
        bar.set_postfix(top1=f"{record['top1']:.3f}")

    try:
        result = train_linear_probe(
            x_tr, train["label"], x_te, test["label"], epochs=cfg.epochs, lr=cfg.lr,
            weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seed=cfg.seed,
            num_classes=num_classes, on_epoch=on_epoch,
        )
    finally:
        bar.close()
    if (tensor_digest(x_tr), tensor_digest(x_te)) != before:
        raise RuntimeError(f"the linear probe changed its input features ({column})")
    return result


def probe_seed(feature_dir: Path, cfg: ProbeConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """All probe rows for one seed's ``features/<experiment>/seed_<s>`` folder.

    Returns ``(metrics, info)``: the flat metric record and the feature sizes / row counts.
    """
    feature_dir = Path(feature_dir)
    train = read_features(feature_dir / "train.parquet")
    test = read_features(feature_dir / "test.parquet")
    num_classes = int(max(int(train["label"].max()), int(test["label"].max()))) + 1
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {"train_count": int(train["label"].shape[0]), "test_count": int(test["label"].shape[0])}
    for column, suffix in FEATURE_ROWS.items():
        result = probe_features(train, test, column, cfg, num_classes=num_classes)
        metrics[f"probe_top1{suffix}"] = result["top1"]
        metrics[f"probe_top5{suffix}"] = result["top5"]
        metrics[f"probe_train_top1{suffix}"] = result["train_top1"]
        info[f"feature_dim_{column}"] = int(train[column].shape[1])
    return metrics, info


def evaluate_probe(root: Path, experiment: str, params: Params) -> dict[str, Any]:
    """Probe every seed of ``experiment``, log into each model's MLflow run, return the report."""
    root = Path(root)
    per_seed: dict[int, dict[str, float]] = {}
    info: dict[str, Any] = {}
    for seed in params.seeds:
        feature_dir = seed_dir(Layout(root).features(experiment), seed)
        if not (feature_dir / "train.parquet").is_file():
            run_id_of(root, experiment, seed)  # a missing model names the training stage first
            raise DataError(
                f"{feature_dir}: no extracted features; run `dvc repro extract@{experiment}` "
                f"(or `python stages/extract.py --experiment {experiment}`) first"
            )
        metrics, info = probe_seed(feature_dir, params.probe)
        per_seed[seed] = metrics
        log_to_run(root, run_id_of(root, experiment, seed), metrics)
    return build_report(
        per_seed,
        experiment=experiment,
        protocol=(
            "linear probe (AdamW, cross-entropy, standardised features) on frozen EMA features, trained "
            "on the train split without augmentation, evaluated on the test split; main row = backbone "
            "feature; _anchor / _latent_alpha0 / _latent_alpha1 rows = the Fig. 19 feature ablation"
        ),
        probe=params.probe.model_dump(mode="json"),
        **info,
    )
