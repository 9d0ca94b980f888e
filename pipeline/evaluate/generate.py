"""Sample images from a generative experiment (LZN_SPEC §2.1 "Generation", §2.3 conditional generation).

For every seed of ``rf``, ``rf_lzn``, ``rf_cond`` or ``lzn_joint`` (EMA weights),
``samples/<experiment>/seed_<s>/`` holds:

- ``samples.npz``        ``generate.num_samples`` images from the main sampler (``generate.sampler``,
  default RK45 with rtol = atol = 1e-5 as the paper): ``images`` uint8 ``[n, H, W, C]``, ``labels``
  int64 ``[n]`` (-1 for unconditional models), ``sampler`` (str), ``nfe`` (mean function evaluations
  per trajectory over the generation batches) and ``nfe_per_batch``;
- ``samples_euler.npz``  the same noise and conditioning through the Euler sampler
  (``generate.euler_steps`` steps; the NFE ablation, "euler10" in the paper);
- ``grid.png``           the first 64 main-sampler images as an 8x8 grid (logged to the model's
  MLflow run).

Conditional models (``rf_cond``, ``lzn_joint``) generate **class-balanced** labels ``i mod C`` (as
the paper's saved ``RandomSamplesMore`` arrays: exactly n/C per class), so the grid's columns cycle
through the classes. ``lzn_joint`` draws its latent in the class's zone of the label flow
(``classify.label_steps`` Euler steps, alpha = 1). ``samples/<experiment>/generate.json`` records
the NFE and wall time per seed. The whole folder is written to a temporary folder and renamed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lzn.generation import generate
from pipeline.data.images import from_uint8, to_uint8
from pipeline.errors import DataError
from pipeline.evaluate.seeds import SeedModel, build_report, log_to_run, progress
from pipeline.io import atomic_dir, write_json
from pipeline.params import CONDITIONAL, GENERATIVE, GenerateConfig
from pipeline.paths import seed_dir

__all__ = ["GENERATE_EXPERIMENTS", "balanced_labels", "generate_experiment", "generate_samples", "load_samples",
           "save_grid", "to_uint8_nhwc"]

GENERATE_EXPERIMENTS: tuple[str, ...] = GENERATIVE
MAIN_FILE = "samples.npz"
EULER_FILE = "samples_euler.npz"
GRID_FILE = "grid.png"


def balanced_labels(n: int, num_classes: int) -> Tensor:
    """``[n]`` labels ``i mod C``: every class ``floor(n/C)`` or ``ceil(n/C)`` times."""
    return torch.arange(n, dtype=torch.int64) % num_classes


def to_uint8_nhwc(images: Tensor) -> np.ndarray:
    """``[n, C, H, W]`` in [-1, 1] -> uint8 ``[n, H, W, C]`` (:func:`pipeline.data.images.to_uint8`, then NHWC)."""
    return to_uint8(images.detach().cpu()).permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8_nhwc(images: np.ndarray) -> Tensor:
    """uint8 ``[n, H, W, C]`` -> float32 ``[n, C, H, W]`` in [-1, 1]."""
    return from_uint8(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))


@torch.no_grad()
def generate_samples(
    model: SeedModel, cfg: GenerateConfig, *, sampler: str, label_steps: int, desc: str = "generate"
) -> dict[str, Any]:
    """``cfg.num_samples`` images of one model with ``sampler``; the noise is seeded by
    ``(cfg.seed, model seed)`` and identical for both samplers."""
    name, shape = model.exp.name, model.shape
    n = cfg.num_samples
    labels = balanced_labels(n, shape.num_classes) if name in CONDITIONAL else None
    gen = torch.Generator().manual_seed(1_000_003 * cfg.seed + model.seed)
    chunks, nfes = [], []
    for b0 in progress(range(0, n, cfg.batch_size), total=math.ceil(n / cfg.batch_size), desc=desc):
        nb = min(cfg.batch_size, n - b0)
        x, info = generate(
            name, model.modules, nb,
            image_shape=(shape.channels, shape.image_size, shape.image_size),
            labels=None if labels is None else labels[b0 : b0 + nb],
            latent_dim=model.exp.latent_dim, num_classes=shape.num_classes,
            sampler=sampler, steps=cfg.euler_steps, generator=gen, label_steps=label_steps,
        )
        chunks.append(to_uint8_nhwc(x))
        nfes.append(int(info["nfe"]))
    return {
        "images": np.concatenate(chunks),
        "labels": (labels if labels is not None else torch.full((n,), -1)).numpy().astype(np.int64),
        "sampler": np.str_(sampler),
        "nfe": np.float64(np.mean(nfes)),
        "nfe_per_batch": np.asarray(nfes, dtype=np.int64),
    }


def save_npz(path: Path, arrays: dict[str, Any]) -> None:
    """``numpy.savez`` layout with fixed member timestamps, so equal arrays give byte-identical files."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def load_samples(path: Path, experiment: str = "<experiment>") -> dict[str, Any]:
    """Read a samples file (no pickle): ``images`` uint8 ``[n, H, W, C]``, ``labels``, ``sampler``, ``nfe``."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: samples not found; run `dvc repro generate@{experiment}` first")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: unreadable samples file ({err}); run `dvc repro generate@{experiment}`") from None
    if "images" not in out or out["images"].dtype != np.uint8 or out["images"].ndim != 4:
        raise DataError(f"{path}: expected uint8 images [n, H, W, C]; run `dvc repro generate@{experiment}`")
    return out


def save_grid(images: np.ndarray, path: Path, *, rows: int = 8, cols: int = 8, scale: int = 4, pad: int = 1) -> Path:
    """First ``rows * cols`` uint8 ``[n, H, W, C]`` images as one PNG grid (nearest-neighbour upscaled)."""
    from PIL import Image

    n = min(len(images), rows * cols)
    _, h, w, c = images.shape
    hh, ww = h * scale, w * scale
    canvas = np.full((rows * (hh + pad) + pad, cols * (ww + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        tile = images[i].repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[pad + r * (hh + pad) : pad + r * (hh + pad) + hh, pad + k * (ww + pad) : pad + k * (ww + pad) + ww] = tile
    img = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")
    img.save(path, format="PNG")
    return path


def generate_experiment(root: Path, models: list[SeedModel], cfg: GenerateConfig, out_dir: Path, *,
                        label_steps: int) -> dict[str, Any]:
    """Write ``out_dir/seed_<s>/`` for every model (atomically, as one folder); log grids and NFE to MLflow."""
    per_seed: dict[int, dict[str, float]] = {}
    with atomic_dir(out_dir) as tmp:
        for model in models:
            seed_out = seed_dir(tmp, model.seed)
            seed_out.mkdir()
            record: dict[str, float] = {}
            for sampler, fname in ((cfg.sampler, MAIN_FILE), ("euler", EULER_FILE)):
                start = time.perf_counter()
                arrays = generate_samples(model, cfg, sampler=sampler, label_steps=label_steps,
                                          desc=f"generate seed {model.seed} {sampler}")
                suffix = "" if fname == MAIN_FILE else "_euler"
                record[f"nfe{suffix}"] = float(arrays["nfe"])
                record[f"seconds{suffix}"] = time.perf_counter() - start
                save_npz(seed_out / fname, arrays)
                if fname == MAIN_FILE:
                    save_grid(arrays["images"], seed_out / GRID_FILE)
            per_seed[model.seed] = record
            log_to_run(root, model.run_id, {f"generate_{k}": v for k, v in record.items()},
                       artifacts=[(seed_out / GRID_FILE, "eval/generate")])
        report = build_report(
            per_seed, experiment=models[0].exp.name, num_samples=cfg.num_samples, sampler=cfg.sampler,
            euler_steps=cfg.euler_steps, labels="class-balanced (i mod C)" if models[0].exp.name in CONDITIONAL else "none",
        )
        write_json(tmp / "generate.json", report)
    return report
