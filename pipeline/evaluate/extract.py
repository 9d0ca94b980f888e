"""Feature extraction of an encoder experiment: one exact pass over train and test, as Parquet.

For every seed of ``rf_lzn``, ``simclr``, ``lzn_repr`` or ``lzn_joint``, with the EMA weights,
``features/<experiment>/seed_<s>/{train,test}.parquet`` holds one row per sample, in shard order:

=============  ====================  ===================================================================
column         type                  content
=============  ====================  ===================================================================
``key``        string                WebDataset sample key
``label``      int64                 class index
``backbone``   list<float32>         ``encoder.features(x)`` (the representation of LZN_SPEC §2.2)
``anchor``     list<float32>         ``encoder(x)``, the anchor (projection-head output)
``latent_a0``  list<float32>         latent ``C(X)`` with alpha = 0 (deterministic zone centre)
``latent_a1``  list<float32>         latent ``C(X)`` with alpha = 1
=============  ====================  ===================================================================

Latents depend on the other anchors of the evaluation batch (LZN_SPEC §1.7): they are computed over
the anchors of each batch of ``extract.batch_size`` images (the last batch of a split may be
smaller), with the experiment's ``latent_flow`` solver/steps/eps/precision (``simclr`` has no latent flow; it
uses ``lzn_repr``'s, its LZN counterpart, so the Fig. 19 ablation compares like with like). The
noise is seeded per (model seed, split) and shared by both alphas. Columns are stored as float32.

The pass is checked against the manifest's sample count and the encoder's weights are checked
to be bit-identical before and after. The whole ``features/<experiment>`` folder is written to a
temporary folder and renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from lzn.flow import FlowSpec
from pipeline.data.loaders import eval_loader
from pipeline.data.manifest import load_manifest
from pipeline.errors import DataError
from pipeline.evaluate.seeds import SeedModel, progress
from pipeline.io import atomic_dir
from pipeline.params import ENCODERS, FlowConfig
from pipeline.paths import seed_dir

__all__ = ["COLUMNS", "EXTRACT_EXPERIMENTS", "VECTOR_COLUMNS", "extract_experiment", "extract_split",
           "feature_flow", "read_features"]

EXTRACT_EXPERIMENTS: tuple[str, ...] = ENCODERS
VECTOR_COLUMNS = ("backbone", "anchor", "latent_a0", "latent_a1")
COLUMNS = ("key", "label", *VECTOR_COLUMNS)
SPLITS = ("train", "test")


def feature_flow(model: SeedModel) -> FlowConfig:
    """The latent flow used for the latent columns (the experiment's; ``simclr`` borrows ``lzn_repr``'s)."""
    if model.exp.latent_flow is not None:
        return model.exp.latent_flow
    return model.params.experiment("lzn_repr").latent_flow


def state_digest(module: nn.Module) -> str:
    """SHA-256 over the bytes of every parameter and buffer (names included)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _vector_array(rows: np.ndarray) -> pa.Array:
    """``[n, d]`` float32 -> a Parquet ``list<float32>`` column."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, d = rows.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1)))


@torch.no_grad()
def extract_split(
    encoder: nn.Module,
    shard_dir: Path,
    split: str,
    *,
    batch_size: int,
    flow: FlowSpec,
    generator: torch.Generator,
) -> dict[str, Any]:
    """One exact ordered pass over ``split``: ``{key: [n] str, label: [n], <vector column>: [n, d]}``.

    The latent columns use ``flow`` at ``alpha = 0`` and ``1`` (its own alpha is not used).
    """
    loader = eval_loader(shard_dir, split, batch_size, rank=0, world_size=1)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    centre, spread = flow.replace(alpha=0.0), flow.replace(alpha=1.0)
    for images, labels, keys in progress(loader, total=len(loader), desc=f"extract {split}"):
        anchor = encoder(images)
        noise = torch.randn(anchor.shape, generator=generator, dtype=flow.dtype)
        cols["key"].extend(keys)
        cols["label"].append(labels.numpy())
        cols["backbone"].append(encoder.features(images).numpy())
        cols["anchor"].append(anchor.numpy())
        cols["latent_a0"].append(centre.latents(anchor, anchor, noise).float().numpy())
        cols["latent_a1"].append(spread.latents(anchor, anchor, noise).float().numpy())
    out: dict[str, Any] = {"key": cols["key"], "label": np.concatenate(cols["label"]).astype(np.int64)}
    for c in VECTOR_COLUMNS:
        out[c] = np.concatenate(cols[c]).astype(np.float32)
    return out


def write_features(path: Path, columns: dict[str, Any], metadata: dict[str, Any]) -> None:
    table = pa.table(
        {"key": pa.array(columns["key"], pa.string()), "label": pa.array(columns["label"], pa.int64()),
         **{c: _vector_array(columns[c]) for c in VECTOR_COLUMNS}}
    )
    table = table.replace_schema_metadata({"lzn": json.dumps(metadata, sort_keys=True)})
    pq.write_table(table, path)


def extract_experiment(models: list[SeedModel], shard_dir: Path, out_dir: Path, *, batch_size: int) -> dict[str, Any]:
    """Write ``out_dir/seed_<s>/{train,test}.parquet`` for every model; return row counts per seed.

    Raises:
        DataError: a pass saw a different number of samples than the manifest lists.
        RuntimeError: extraction changed the encoder's weights.
    """
    manifest = load_manifest(shard_dir)
    summary: dict[str, Any] = {}
    with atomic_dir(out_dir) as tmp:
        for model in models:
            encoder = model.modules["encoder"].eval()
            before = state_digest(encoder)
            flow = feature_flow(model)
            seed_out = seed_dir(tmp, model.seed)
            seed_out.mkdir()
            counts = {}
            for i, split in enumerate(SPLITS):
                gen = torch.Generator().manual_seed(1_000_003 * model.seed + i)
                cols = extract_split(encoder, shard_dir, split, batch_size=batch_size, flow=flow.spec(), generator=gen)
                n = len(cols["key"])
                if n != int(manifest["counts"][split]):
                    raise DataError(
                        f"{shard_dir}/{split}: the evaluation pass saw {n} samples, the manifest lists "
                        f"{manifest['counts'][split]}; run `dvc repro shard`"
                    )
                meta = {
                    "experiment": model.exp.name, "seed": model.seed, "split": split, "rows": n,
                    "batch_size": batch_size, "latent_flow": flow.model_dump(mode="json"),
                    "weights": "ema", "run_id": model.run_id,
                }
                write_features(seed_out / f"{split}.parquet", cols, meta)
                counts[split] = n
            if state_digest(encoder) != before:
                raise RuntimeError(f"{model.path}: feature extraction changed the encoder's weights")
            summary[model.seed] = counts
    return summary


def read_features(path: Path, columns: tuple[str, ...] = COLUMNS) -> dict[str, Any]:
    """Read one Parquet file of :func:`write_features`: ``key`` list, ``label`` [n] int64, vectors [n, d] float32."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: features not found; run `dvc repro extract@<experiment>` first")
    table = pq.read_table(path, columns=list(columns))
    out: dict[str, Any] = {}
    for c in columns:
        col = table.column(c).combine_chunks()
        if c == "key":
            out[c] = col.to_pylist()
        elif c == "label":
            out[c] = torch.from_numpy(col.to_numpy().astype(np.int64))
        else:
            values = col.flatten().to_numpy(zero_copy_only=False)
            out[c] = torch.from_numpy(np.array(values, dtype=np.float32, copy=True).reshape(len(col), -1))
    return out
