"""Batches out of the WebDataset shards written by :mod:`pipeline.data.shards` (``data/shards``).

Three ways to read a split, all checked against the manifest (:mod:`pipeline.data.manifest`):

- :func:`train_loader` — endless, shuffled training batches of this rank; each ``iter()`` is one
  epoch of ``epoch_length`` batches (:class:`TrainLoader`). Which rank and worker reads which shard
  is described in :mod:`pipeline.data.partition`; :class:`TrainLoader` cuts ``epoch_length``
  batches of the per-rank ``batch_size`` per epoch (equal on every rank, as Ray Train requires)
  from one continuing stream, so consecutive epochs walk on through the passes instead of
  restarting them.
- :func:`eval_loader` — one ordered pass; shard ``i`` of the (sorted) list goes to rank
  ``i mod world``, and within a rank to worker ``j mod workers`` by position, so every sample is
  seen exactly once. After the pass :func:`count_check` compares the count with the manifest
  (summed over ranks with ``all_reduce`` when a process group is initialised) and raises otherwise.
- :func:`read_split` — a whole split in memory, as uint8.

Batches are ``(images, labels, keys)``: float32 ``[B, C, H, W]`` in [-1, 1]
(:func:`pipeline.data.images.from_uint8`), int64 ``[B]`` and a list of ``B`` sample keys. Members
are decoded by :func:`pipeline.data.tar.decode_sample` (safe decoders only, never unpickling).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from pipeline.data.images import from_uint8
from pipeline.data.manifest import RERUN, load_manifest, shard_files
from pipeline.data.partition import SampleShuffle, ShardStream, resolve_rank, split_by_node
from pipeline.data.tar import IMAGE_MEMBERS, decode_sample, tar_samples
from pipeline.errors import DataError

__all__ = ["EvalLoader", "TrainLoader", "count_check", "eval_loader", "read_split", "train_loader"]

Batch = tuple[torch.Tensor, torch.Tensor, list[str]]

# ------------------------------------------------------------------------------ samples -> batches
_NEEDED = frozenset({*IMAGE_MEMBERS, "cls"})


def _examples(
    src: Iterable[dict[str, Any]], shape: tuple[int, int, int]
) -> Iterator[tuple[np.ndarray, int, str]]:
    """Raw samples -> ``(uint8 [H,W] or [H,W,3] array, label, key)``, checked against the manifest's
    ``(C,H,W)``; :func:`_stack` makes the ``[B,C,H,W]`` batch."""
    c, h, w = shape
    want = (h, w) if c == 1 else (h, w, c)
    for raw in src:
        # decode only what a batch needs (the image and the label), with the same safe decoders
        sample = decode_sample({k: v for k, v in raw.items() if k in _NEEDED or k.startswith("__")})
        where = f"{sample['__url__']}: sample {sample['__key__']}"
        image = next((sample[e] for e in IMAGE_MEMBERS if e in sample), None)
        if image is None or "cls" not in sample:
            raise DataError(f"{where}: needs an image (.png) and a label (.cls) member; {RERUN}")
        if image.shape != want:
            got = [1, *image.shape] if image.ndim == 2 else [image.shape[2], *image.shape[:2]]
            raise DataError(f"{where}: image shape {got} (C,H,W) differs from the manifest's {list(shape)}")
        yield image, sample["cls"], sample["__key__"]


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H,W]`` / ``[H,W,3]`` arrays -> one uint8 ``[B,C,H,W]`` tensor."""
    t = torch.from_numpy(np.stack(arrays))
    return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2).contiguous()


def _batches(src: Iterable[tuple[np.ndarray, int, str]], batch_size: int, partial: bool) -> Iterator[Batch]:
    buf: list[tuple[np.ndarray, int, str]] = []
    for ex in src:
        buf.append(ex)
        if len(buf) == batch_size:
            yield _collate(buf)
            buf = []
    if buf and partial:
        yield _collate(buf)


def _collate(buf: list[tuple[np.ndarray, int, str]]) -> Batch:
    images = from_uint8(_stack([b[0] for b in buf]))
    labels = torch.tensor([b[1] for b in buf], dtype=torch.int64)
    return images, labels, [b[2] for b in buf]


# ------------------------------------------------------------------------------------- training
def train_loader(
    shard_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    seed: int,
    epoch_length: int | None = None,
    num_workers: int = 0,
    shuffle_buffer: int = 1000,
    rank: int | None = None,
    world_size: int | None = None,
) -> TrainLoader:
    """Endless, shuffled training batches of this rank (see the module docstring).

    Yields ``(images float32 [batch_size, C, H, W] in [-1, 1], labels int64 [batch_size], keys)``;
    ``batch_size`` is per rank. One epoch is ``epoch_length`` batches (default: the split size over
    the global batch, at least 1). ``seed`` is shared by all ranks (the shard order must agree); the
    sample shuffle is offset by rank and worker. ``shuffle_buffer <= 1`` disables it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    files = shard_files(shard_dir, split, manifest)
    rank, world_size = resolve_rank(rank, world_size)
    shape = tuple(manifest["image_shape"])
    if epoch_length is None:
        epoch_length = max(1, manifest["counts"][split] // (batch_size * world_size))
    if epoch_length < 1:
        raise ValueError(f"epoch_length must be >= 1, got {epoch_length}")
    dataset = wds.DataPipeline(
        ShardStream([f for f, _ in files], seed),
        functools.partial(split_by_node, rank=rank, world_size=world_size),
        wds.split_by_worker,
        functools.partial(tar_samples, expected=dict(files)),
        SampleShuffle(shuffle_buffer, seed, rank),
        functools.partial(_examples, shape=shape),
        functools.partial(_batches, batch_size=batch_size, partial=False),
    )
    loader = wds.WebLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers)
    return TrainLoader(loader, epoch_length)


class TrainLoader:
    """``epoch_length`` batches per ``iter()``, cut from one endless stream that continues across
    epochs (what ``WebLoader.with_epoch`` does, except that ``with_epoch`` restarts the pipeline —
    and with it the seeded shard order and the shuffle buffer — at every epoch, so with fixed seeds
    each epoch would begin with the same samples and never reach the end of a pass)."""

    def __init__(self, loader: wds.WebLoader, epoch_length: int) -> None:
        self.loader = loader
        self.epoch_length = epoch_length
        self._stream: Iterator[Any] | None = None

    def __len__(self) -> int:
        return self.epoch_length

    def __iter__(self) -> Iterator[Batch]:
        if self._stream is None:
            self._stream = iter(self.loader)
        for _ in range(self.epoch_length):
            yield next(self._stream)


# ----------------------------------------------------------------------------------- evaluation
class EvalLoader:
    """One exact, ordered pass over this rank's share of a split (see :func:`eval_loader`)."""

    def __init__(
        self,
        shard_dir: Path,
        split: str,
        batch_size: int,
        num_workers: int,
        rank: int,
        world_size: int,
    ) -> None:
        manifest = load_manifest(shard_dir)
        files = shard_files(shard_dir, split, manifest)
        self.split, self.rank, self.world_size = split, rank, world_size
        self.shard_dir = shard_dir
        self.total = int(manifest["counts"][split])
        mine = files[rank::world_size]  # what split_by_node below keeps
        self.files = [f for f, _ in mine]
        self.expected = sum(n for _, n in mine)
        workers = max(1, num_workers)
        self._len = sum(-(-sum(n for _, n in mine[w::workers]) // batch_size) for w in range(workers))
        dataset = wds.DataPipeline(
            wds.SimpleShardList([f for f, _ in files]),
            functools.partial(split_by_node, rank=rank, world_size=world_size),
            wds.split_by_worker,
            functools.partial(tar_samples, expected=dict(files)),
            functools.partial(_examples, shape=tuple(manifest["image_shape"])),
            functools.partial(_batches, batch_size=batch_size, partial=True),
        )
        self.loader = wds.WebLoader(
            dataset, batch_size=None, shuffle=False, num_workers=num_workers if self.files else 0
        )
        self.seen = 0

    def __len__(self) -> int:
        """Number of batches this rank yields."""
        return self._len

    def __iter__(self) -> Iterator[Batch]:
        self.seen = 0
        if self.files:
            for batch in self.loader:
                self.seen += len(batch[1])
                yield batch
        count_check(
            self.seen,
            self.total,
            local_expected=self.expected,
            what=f"{self.shard_dir}/{self.split} (rank {self.rank} of {self.world_size})",
        )


def eval_loader(
    shard_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    num_workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> EvalLoader:
    """One exact pass over ``split``: every sample exactly once across ranks and loader workers.

    No shuffling or resampling; batches ``(images float32 [b, C, H, W], labels int64 [b], keys)`` with
    ``b <= batch_size`` (the last batch of each worker may be partial). Ranks may get different numbers
    of samples (whole shards are assigned). After the pass the count is checked (:func:`count_check`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    rank, world_size = resolve_rank(rank, world_size)
    return EvalLoader(Path(shard_dir), split, batch_size, num_workers, rank, world_size)


def count_check(count: int, expected: int, *, local_expected: int | None = None, what: str = "split") -> int:
    """Check that an evaluation pass saw exactly the manifest's samples; return the global count.

    ``count`` is what this rank saw. With an initialised process group of more than one rank the
    counts (and any local mismatch) are summed with ``all_reduce`` and the total must equal
    ``expected`` — every rank raises together. Otherwise ``count`` must equal ``local_expected``
    (this rank's share, when ranks are simulated through RANK/WORLD_SIZE) or else ``expected``.
    """
    import torch.distributed as dist

    local = expected if local_expected is None else local_expected
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([count, int(count != local)], dtype=torch.int64, device=device)
        dist.all_reduce(t)
        total, bad = int(t[0]), int(t[1])
        if total != expected or bad:
            raise DataError(
                f"{what}: evaluation pass saw {total} samples over all ranks, the manifest says {expected}"
                f"{f' ({bad} rank(s) off their share)' if bad else ''}"
            )
        return total
    if count != local:
        raise DataError(f"{what}: evaluation pass saw {count} samples, expected {local} from the manifest")
    return count if local_expected is None else expected


# ------------------------------------------------------------------------------------ in memory
def read_split(shard_dir: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All of ``split`` in memory: ``(uint8 [N, C, H, W], int64 [N], keys)`` in shard order."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    files = shard_files(shard_dir, split, manifest)
    shape = tuple(manifest["image_shape"])
    examples = list(_examples(tar_samples(({"url": f} for f, _ in files), dict(files)), shape))
    if len(examples) != int(manifest["counts"][split]):  # every caller reads the whole split: a local check
        raise DataError(
            f"{shard_dir}/{split}: read {len(examples)} samples, the manifest says {manifest['counts'][split]}; {RERUN}"
        )
    if not examples:
        return torch.zeros((0, *shape), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), []
    images = _stack([e[0] for e in examples])
    labels = torch.tensor([e[1] for e in examples], dtype=torch.int64)
    return images, labels, [e[2] for e in examples]
