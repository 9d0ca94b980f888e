"""Which rank and loader worker reads which shard, and the seeded orders they read them in.

Ranks: the rank and world size are resolved once, in the process that builds the loader, from
``RANK``/``WORLD_SIZE`` (set by Ray Train and torchrun) or an initialised ``torch.distributed``
process group (``webdataset.utils.pytorch_worker_info``), or given explicitly with ``rank=`` and
``world_size=`` (:func:`resolve_rank`). They are then baked into the pipeline
(:func:`split_by_node`), so DataLoader workers agree on them even when they are started with
``spawn`` and no process group exists inside them.

Training reads :class:`ShardStream`, an endless stream of *passes*: every pass is a permutation of
all shards of the split, seeded by ``(seed, epoch, pass)`` and identical on every rank and worker.
That stream is split by node (element ``k`` goes to rank ``k mod world``, like ``wds.split_by_node``)
and then by loader worker (``wds.split_by_worker``). Hence within every pass the ranks (and the
workers of a rank) read pairwise disjoint sets of shards whose union is the whole split — the
sharded analogue of ``DistributedSampler`` with a new permutation per epoch. Plain ``resampled=True``
is not used because independent resampling on each rank lets ranks read the same shard at the same
time. The stream never runs dry, even with fewer shards than ranks x workers. Samples then pass a
shuffle buffer seeded by ``(seed, rank, worker, epoch)`` (:class:`SampleShuffle`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import torch
import webdataset as wds

from pipeline.errors import DataError

__all__ = ["SampleShuffle", "ShardStream", "resolve_rank", "split_by_node", "worker_info"]


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: explicit values, else RANK/WORLD_SIZE or torch.distributed, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None:
        rank, world_size, _, _ = wds.utils.pytorch_worker_info()
    if not (world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"invalid rank {rank} for world size {world_size}")
    return int(rank), int(world_size)


def split_by_node(src: Iterable[Any], rank: int, world_size: int) -> Iterator[Any]:
    """``wds.split_by_node`` with the rank fixed when the loader was built."""
    yield from islice(src, rank, None, world_size) if world_size > 1 else src


def worker_info() -> tuple[int, int]:
    """``(worker id, number of workers)`` of the current DataLoader worker; ``(0, 1)`` outside one."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class ShardStream(torch.utils.data.IterableDataset):
    """Endless ``dict(url=...)`` stream: pass ``p`` of epoch ``e`` is a permutation of all shards
    seeded by ``(seed, e, p)``. Every rank and worker builds the same stream and keeps its slice.
    ``epoch`` counts calls of ``__iter__`` (one per epoch of the loader)."""

    def __init__(self, urls: Iterable[str], seed: int) -> None:
        super().__init__()
        self.urls = list(urls)
        if not self.urls:
            raise DataError("no shards to read")
        self.seed = seed
        self.epoch = -1

    def passes(self, epoch: int) -> Iterator[list[str]]:
        p = 0
        while True:
            order = list(self.urls)
            random.Random(f"shards-{self.seed}-{epoch}-{p}").shuffle(order)
            yield order
            p += 1

    def __iter__(self) -> Iterator[dict[str, str]]:
        self.epoch += 1
        for order in self.passes(self.epoch):
            for url in order:
                yield {"url": url}


class SampleShuffle:
    """Shuffle buffer whose seed is ``(seed, rank, worker, epoch)``; a pipeline stage."""

    def __init__(self, bufsize: int, seed: int, rank: int) -> None:
        self.bufsize, self.seed, self.rank = bufsize, seed, rank
        self.epoch = -1

    def __call__(self, src: Iterable[Any]) -> Iterable[Any]:
        self.epoch += 1
        if self.bufsize <= 1:
            return src
        worker, _ = worker_info()
        rng = random.Random(f"samples-{self.seed}-{self.rank}-{worker}-{self.epoch}")
        return wds.filters.shuffle(self.bufsize, self.bufsize, rng=rng)(src)
