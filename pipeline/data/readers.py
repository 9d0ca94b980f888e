"""Read the WebDataset shards written by :mod:`pipeline.data.shards` (``data/shards``).

Decoding is explicit and safe: PNG/JPEG through PIL (kept in the stored mode, ``L`` = 1 channel,
``RGB`` = 3 channels, checked against the manifest; any other mode is an error), ``cls`` as decimal
text, ``json`` with :func:`json.loads` and ``npy`` with ``numpy.load(allow_pickle=False)``. Nothing is
ever unpickled: webdataset's default decoders are not used (its ``basichandlers`` would unpickle
``.pyd``/``.pickle`` members and its ``"pil"`` mode would turn grayscale into RGB).

Batches are ``(images, labels, keys)``: float32 ``[B, C, H, W]`` in [-1, 1] (``u8 / 127.5 - 1``),
int64 ``[B]`` and a list of ``B`` sample keys.

Ranks: the rank and world size are resolved once, in the process that builds the loader, from
``RANK``/``WORLD_SIZE`` (set by Ray Train and torchrun) or an initialised ``torch.distributed``
process group (``webdataset.utils.pytorch_worker_info``), or given explicitly with ``rank=`` and
``world_size=``. They are then baked into the pipeline, so DataLoader workers agree on them even when
they are started with ``spawn`` and no process group exists inside them.

Training (:func:`train_loader`): an endless stream of *passes*; every pass is a permutation of all
shards of the split, seeded by ``(seed, epoch, pass)`` and identical on every rank and worker. That
stream is split by node (element ``k`` goes to rank ``k mod world``, like ``wds.split_by_node``) and
then by loader worker (``wds.split_by_worker``). Hence within every pass the ranks (and the workers
of a rank) read pairwise disjoint sets of shards whose union is the whole split — the sharded
analogue of ``DistributedSampler`` with a new permutation per epoch. Plain ``resampled=True`` is not
used because independent resampling on each rank lets ranks read the same shard at the same time.
The stream never runs dry, even with fewer shards than ranks x workers. Samples then pass a shuffle
buffer seeded by ``(seed, rank, worker)``, and :class:`TrainLoader` cuts ``epoch_length`` batches of
the per-rank ``batch_size`` per epoch (equal on every rank, as Ray Train requires) from that one
continuing stream, so consecutive epochs walk on through the passes instead of restarting them.

Evaluation (:func:`eval_loader`): one ordered pass; shard ``i`` of the (sorted) list goes to rank
``i mod world``, and within a rank to worker ``j mod workers`` by position, so every sample is
seen exactly once. After the pass :func:`count_check` compares the count with the manifest (summed
over ranks with ``all_reduce`` when a process group is initialised) and raises otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import zlib
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image, UnidentifiedImageError

from pipeline.data.shards import MANIFEST, MANIFEST_FORMAT
from pipeline.data.sources import DataError

__all__ = [
    "MANIFEST",
    "EvalLoader",
    "ShardStream",
    "TrainLoader",
    "augment_kwargs",
    "count_check",
    "decode_sample",
    "eval_loader",
    "load_manifest",
    "read_split",
    "resolve_rank",
    "shard_files",
    "train_loader",
    "verify_shards",
]

_RERUN = "run `dvc repro shard` (python stages/shard.py)"


# ------------------------------------------------------------------------------------ manifest
def load_manifest(shard_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check ``<shard_dir>/manifest.json``; raise :class:`DataError` naming the file."""
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: shard manifest not found; {_RERUN}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exn:
        raise DataError(f"{path}: not valid JSON ({exn}); {_RERUN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: not a shard manifest of format {MANIFEST_FORMAT}; {_RERUN}")
    for key in ("image_shape", "channels", "class_names", "counts", "splits"):
        if key not in manifest:
            raise DataError(f"{path}: missing key {key!r}; {_RERUN}")
    return manifest


def _split_entry(manifest: dict[str, Any], split: str, shard_dir: Path) -> dict[str, Any]:
    if split not in manifest["splits"]:
        raise DataError(
            f"{shard_dir / MANIFEST}: no split {split!r} (has {', '.join(sorted(manifest['splits']))})"
        )
    return manifest["splits"][split]


def shard_files(
    shard_dir: str | os.PathLike, split: str, manifest: dict[str, Any] | None = None
) -> list[tuple[str, int]]:
    """``[(path, samples)]`` of a split's shards in manifest order; checks existence and byte size."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir) if manifest is None else manifest
    out = []
    for shard in _split_entry(manifest, split, shard_dir)["shards"]:
        path = shard_dir / shard["path"]
        if not path.is_file():
            raise DataError(f"{path}: shard listed in the manifest is missing; {_RERUN}")
        size = path.stat().st_size
        if size != shard["bytes"]:
            raise DataError(
                f"{path}: truncated or modified shard ({size} bytes, the manifest says {shard['bytes']}); {_RERUN}"
            )
        out.append((str(path), int(shard["samples"])))
    return out


def verify_shards(shard_dir: str | os.PathLike, split: str | None = None) -> None:
    """Check every shard's sha256 against the manifest (reads all bytes; optional, slow for big data)."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    for s in [split] if split else list(manifest["splits"]):
        shard_files(shard_dir, s, manifest)
        for shard in manifest["splits"][s]["shards"]:
            path = shard_dir / shard["path"]
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            if h.hexdigest() != shard["sha256"]:
                raise DataError(f"{path}: sha256 differs from the manifest (corrupt shard); {_RERUN}")


# ---------------------------------------------------------------------------------- tar + decode
_BLOCK = 512


class _TarFormatError(Exception):
    pass


def _octal(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 (sizes >= 8 GiB)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise _TarFormatError(f"invalid {what} field {text[:12]!r}") from None


def _pax_records(payload: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(payload):
        length = int(payload[pos : payload.index(b" ", pos)])
        record = payload[pos : pos + length].decode("utf-8").rstrip("\n")
        key, _, value = record.split(" ", 1)[1].partition("=")
        out[key] = value
        pos += length
    return out


def _tar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(name, payload)`` of the regular files of a whole tar file (ustar, pax and GNU long names).

    A minimal, checked reader for whole shards held in memory (Python's ``tarfile`` parses headers
    several times slower and ends silently at a damaged header): every header checksum is verified
    (in one vectorised pass), short members and a missing end-of-archive marker are errors, and only
    zero padding may follow the marker.
    """
    n, pos = len(data), 0
    members: list[tuple[int, int]] = []  # (header offset, payload size)
    while True:
        if pos + _BLOCK > n:
            raise _TarFormatError(f"unexpected end of data at byte {pos} (no end-of-archive marker)")
        if data[pos] == 0 and data.count(0, pos, pos + _BLOCK) == _BLOCK:
            if data.count(0, pos) != n - pos:
                raise _TarFormatError(f"data after the end-of-archive marker at byte {pos}")
            break
        field = data[pos + 124 : pos + 136]
        try:
            size = int(field.strip(b"\0 "), 8)
        except ValueError:
            size = _octal(field, "size")
        end = pos + _BLOCK + size
        if end > n:
            raise _TarFormatError(f"unexpected end of data in the member at byte {pos}")
        members.append((pos, size))
        pos = end + (-size % _BLOCK)
    if not members:
        return
    starts = np.fromiter((p for p, _ in members), dtype=np.int64, count=len(members))
    blocks = np.frombuffer(data, np.uint8)[starts[:, None] + np.arange(_BLOCK)].astype(np.int64)
    computed = (blocks.sum(axis=1) - blocks[:, 148:156].sum(axis=1) + 8 * 32).tolist()  # chksum as spaces
    long_name: str | None = None
    pax: dict[str, str] = {}
    for (pos, size), value in zip(members, computed):
        if _octal(data[pos + 148 : pos + 156], "checksum") != value:
            raise _TarFormatError(f"bad header checksum at byte {pos}")
        kind = data[pos + 156]
        payload = data[pos + _BLOCK : pos + _BLOCK + size]
        if kind in (0x30, 0, 0x37):  # "0", NUL, "7": regular file
            name = data[pos : pos + 100].split(b"\0", 1)[0].decode("utf-8")
            if data[pos + 345] and data[pos + 257 : pos + 262] == b"ustar":
                name = data[pos + 345 : pos + 500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
            if long_name is not None or pax:
                name = pax.get("path", long_name or name)
                long_name, pax = None, {}
            yield name, payload
        elif kind == 0x78:  # "x": pax header of the next member
            pax = _pax_records(payload)
        elif kind == 0x4C:  # "L": GNU long name of the next member
            long_name = payload.split(b"\0", 1)[0].decode("utf-8")
        else:  # directories, links, global pax headers ...: skipped
            long_name, pax = (None, {}) if kind != 0x67 else (long_name, pax)


def _tar_samples(
    src: Iterable[dict[str, Any]], expected: dict[str, int] | None = None
) -> Iterator[dict[str, Any]]:
    """``dict(url=path)`` -> raw samples ``{"__key__", "__url__", ext: bytes}`` (a wds-style stage).

    Members are grouped by key (the file name up to its first dot, as webdataset does). A damaged
    or truncated tar, or a shard whose sample count differs from ``expected[path]``, raises a
    :class:`DataError` naming the shard.
    """
    for item in src:
        url = item["url"]
        count = 0
        try:
            with open(url, "rb") as fh:
                raw = fh.read()  # a whole shard at a time (one sequential read)
            current: dict[str, Any] | None = None
            for name, data in _tar_members(raw):
                base = name.rsplit("/", 1)[-1]
                if "." not in base:
                    continue
                key, ext = base.split(".", 1)
                key, ext = name[: len(name) - len(base)] + key, ext.lower()
                if current is not None and current["__key__"] != key:
                    count += 1
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                if ext in current:
                    raise DataError(f"{url}: sample {key}: duplicate member {base}")
                current[ext] = data
            if current is not None:
                count += 1
                yield current
        except DataError:
            raise
        except (_TarFormatError, OSError, ValueError) as exn:
            raise DataError(f"{url}: truncated or corrupt tar shard ({exn}); {_RERUN}") from None
        if expected is not None and url in expected and count != expected[url]:
            raise DataError(
                f"{url}: {count} samples in the shard, the manifest says {expected[url]} "
                f"(truncated or modified shard); {_RERUN}"
            )


def _decode_image(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            if mode not in ("L", "RGB"):
                raise DataError(
                    f"{where}: unsupported image mode {mode!r} (expected 'L' for 1 channel or 'RGB' for 3)"
                )
            return np.array(img, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error) as exn:
        raise DataError(f"{where}: corrupt image ({type(exn).__name__}: {exn})") from None


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode the members of one raw sample with the safe decoders only.

    ``png``/``jpg``/``jpeg`` -> uint8 ``[H, W]`` or ``[H, W, 3]``; ``cls`` -> int; ``json`` -> object;
    ``npy`` -> array (no pickle). Keys starting with ``__`` are kept; other members are dropped.
    """
    key, url = sample.get("__key__", "?"), sample.get("__url__", "?")
    where = f"{url}: sample {key}"
    out: dict[str, Any] = {k: v for k, v in sample.items() if k.startswith("__")}
    for ext, data in sample.items():
        if ext.startswith("__"):
            continue
        try:
            if ext in ("png", "jpg", "jpeg"):
                out[ext] = _decode_image(data, where)
            elif ext == "cls":
                out[ext] = int(data.decode("ascii").strip())
            elif ext == "json":
                out[ext] = json.loads(data.decode("utf-8"))
            elif ext == "npy":
                out[ext] = np.load(io.BytesIO(data), allow_pickle=False)
        except DataError:
            raise
        except (ValueError, UnicodeDecodeError) as exn:
            raise DataError(f"{where}: cannot decode .{ext} ({exn})") from None
    return out


_NEEDED = frozenset({"png", "jpg", "jpeg", "cls"})


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
        image = next((sample[e] for e in ("png", "jpg", "jpeg") if e in sample), None)
        if image is None or "cls" not in sample:
            raise DataError(f"{where}: needs an image (.png) and a label (.cls) member; {_RERUN}")
        if image.shape != want:
            got = [1, *image.shape] if image.ndim == 2 else [image.shape[2], *image.shape[:2]]
            raise DataError(f"{where}: image shape {got} (C,H,W) differs from the manifest's {list(shape)}")
        yield image, sample["cls"], sample["__key__"]


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H,W]`` / ``[H,W,3]`` arrays -> one uint8 ``[B,C,H,W]`` tensor."""
    t = torch.from_numpy(np.stack(arrays))
    return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2).contiguous()


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,C,H,W]`` -> float32 in [-1, 1]."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def _batches(src: Iterable[tuple[np.ndarray, int, str]], batch_size: int, partial: bool) -> Iterator[tuple]:
    buf: list[tuple[np.ndarray, int, str]] = []
    for ex in src:
        buf.append(ex)
        if len(buf) == batch_size:
            yield _collate(buf)
            buf = []
    if buf and partial:
        yield _collate(buf)


def _collate(buf: list[tuple[np.ndarray, int, str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    images = _to_float(_stack([b[0] for b in buf]))
    labels = torch.tensor([b[1] for b in buf], dtype=torch.int64)
    return images, labels, [b[2] for b in buf]


# ---------------------------------------------------------------------------------- rank split
def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: explicit values, else RANK/WORLD_SIZE or torch.distributed, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None:
        rank, world_size, _, _ = wds.utils.pytorch_worker_info()
    if not (world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"invalid rank {rank} for world size {world_size}")
    return int(rank), int(world_size)


def _split_by_node(src: Iterable[Any], rank: int, world_size: int) -> Iterator[Any]:
    """``wds.split_by_node`` with the rank fixed when the loader was built."""
    yield from islice(src, rank, None, world_size) if world_size > 1 else src


def _worker() -> tuple[int, int]:
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


class _SampleShuffle:
    """Shuffle buffer whose seed is ``(seed, rank, worker, epoch)``; a pipeline stage."""

    def __init__(self, bufsize: int, seed: int, rank: int) -> None:
        self.bufsize, self.seed, self.rank = bufsize, seed, rank
        self.epoch = -1

    def __call__(self, src: Iterable[Any]) -> Iterable[Any]:
        self.epoch += 1
        if self.bufsize <= 1:
            return src
        worker, _ = _worker()
        rng = random.Random(f"samples-{self.seed}-{self.rank}-{worker}-{self.epoch}")
        return wds.filters.shuffle(self.bufsize, self.bufsize, rng=rng)(src)


# ------------------------------------------------------------------------------------- loaders
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
        functools.partial(_split_by_node, rank=rank, world_size=world_size),
        wds.split_by_worker,
        functools.partial(_tar_samples, expected=dict(files)),
        _SampleShuffle(shuffle_buffer, seed, rank),
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        if self._stream is None:
            self._stream = iter(self.loader)
        for _ in range(self.epoch_length):
            yield next(self._stream)


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
        mine = files[rank::world_size]  # what _split_by_node below keeps
        self.files = [f for f, _ in mine]
        self.expected = sum(n for _, n in mine)
        workers = max(1, num_workers)
        self._len = sum(-(-sum(n for _, n in mine[w::workers]) // batch_size) for w in range(workers))
        dataset = wds.DataPipeline(
            wds.SimpleShardList([f for f, _ in files]),
            functools.partial(_split_by_node, rank=rank, world_size=world_size),
            wds.split_by_worker,
            functools.partial(_tar_samples, expected=dict(files)),
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
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


def read_split(shard_dir: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All of ``split`` in memory: ``(uint8 [N, C, H, W], int64 [N], keys)`` in shard order."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    files = shard_files(shard_dir, split, manifest)
    shape = tuple(manifest["image_shape"])
    examples = list(_examples(_tar_samples(({"url": f} for f, _ in files), dict(files)), shape))
    if len(examples) != int(manifest["counts"][split]):  # every caller reads the whole split: a local check
        raise DataError(
            f"{shard_dir}/{split}: read {len(examples)} samples, the manifest says {manifest['counts'][split]}; {_RERUN}"
        )
    if not examples:
        return torch.zeros((0, *shape), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), []
    images = _stack([e[0] for e in examples])
    labels = torch.tensor([e[1] for e in examples], dtype=torch.int64)
    return images, labels, [e[2] for e in examples]


# ------------------------------------------------------------------------------- augmentations
def augment_kwargs(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`lzn.augment.simclr_views` from a ``SimCLRAugmentConfig``."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.model_dump().items()}
