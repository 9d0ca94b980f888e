"""Read throughput of the WebDataset shards vs the same images as individual PNG files.

    python bench/bench_read.py [--repeats 5] [--batch-size 256] [--synthetic 4096]

For each dataset (the default `digits` source, and random 32x32 RGB images the size of CIFAR-10)
the images are written once as shards (``pipeline.data.shards``) and once as one PNG file per image in
class folders (the reference: what an image-folder reader does). Both are then read in the same run
into the same batches — float32 ``[B, C, H, W]`` in [-1, 1] plus int64 labels — by
``pipeline.data.loaders.eval_loader`` (one process) and by a plain PIL loop over the files; and, to
isolate the container cost, as raw bytes only (no PNG decoding). Printed:
images/s of each — wall clock and per CPU second of this process (the latter is robust to other
load on the machine) — as medians over ``--repeats`` interleaved runs with a warm page cache, and the
ratios shards / files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.images import from_uint8  # noqa: E402
from pipeline.data.loaders import eval_loader  # noqa: E402
from pipeline.data.manifest import shard_files  # noqa: E402
from pipeline.data.shards import encode_png, write_source  # noqa: E402
from pipeline.data.sources import SPLITS, ArraySource, Source, open_source  # noqa: E402
from pipeline.data.tar import tar_samples  # noqa: E402
from pipeline.params import ShardConfig  # noqa: E402


def write_files(source: Source, root: Path) -> list[tuple[Path, int]]:
    files = []
    for split in SPLITS:
        for s in source.samples(split):
            path = root / split / str(s.label) / f"{s.key}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_png(s.image))
            files.append((path, s.label))
    return files


def read_files(files: list[tuple[Path, int]], batch_size: int) -> int:
    n = 0
    for i in range(0, len(files), batch_size):
        chunk = files[i : i + batch_size]
        arrays = []
        for path, _ in chunk:
            with Image.open(path) as img:
                arrays.append(torch.from_numpy(np.array(img, dtype=np.uint8)))
        x = torch.stack(arrays)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        images = from_uint8(x)
        labels = torch.tensor([label for _, label in chunk], dtype=torch.int64)
        assert images.shape[0] == len(labels)
        n += len(labels)
    return n


def read_shards(shard_dir: Path, batch_size: int) -> int:
    return sum(len(labels) for split in SPLITS for _, labels, _ in eval_loader(shard_dir, split, batch_size))


def raw_shards(shard_dir: Path) -> int:
    """Container cost only: every sample's bytes out of the shards, no decoding."""
    urls = [{"url": f} for split in SPLITS for f, _ in shard_files(shard_dir, split)]
    return sum(1 for _ in tar_samples(urls))


def raw_files(files: list[tuple[Path, int]]) -> int:
    """Container cost only: every file's bytes, no decoding."""
    return sum(1 for path, _ in files if path.read_bytes())


def timed(fn) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn()
    return n, time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, source: Source, repeats: int, batch_size: int, tmp: Path) -> None:
    shard_dir, file_dir = tmp / f"{name}-shards", tmp / f"{name}-files"
    manifest = write_source(source, shard_dir, shard_size=256, progress=False)
    files = write_files(source, file_dir)
    readers = {
        "shards": lambda: read_shards(shard_dir, batch_size),
        "files": lambda: read_files(files, batch_size),
        "raw_shards": lambda: raw_shards(shard_dir),
        "raw_files": lambda: raw_files(files),
    }
    for fn in readers.values():
        assert fn() == len(files)  # warm-up: page cache, imports
    wall: dict[str, list[float]] = {k: [] for k in readers}
    cpu: dict[str, list[float]] = {k: [] for k in readers}
    for _ in range(repeats):  # interleaved, so load from other processes hits both alike
        for key, fn in readers.items():
            n, w, c = timed(fn)
            wall[key].append(n / w)
            cpu[key].append(n / max(c, 1e-9))
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    shards = sum(len(s["shards"]) for s in manifest["splits"].values())
    shape = "x".join(map(str, manifest["image_shape"]))
    for label, a, b in (("decoded batches", "shards", "files"), ("bytes only", "raw_shards", "raw_files")):
        print(
            f"{name:<7} {len(files):>5} x {shape:<7} {label:<15} | shards ({shards:>2} tar): {med[a]:>9,.0f} img/s "
            f"| PNG files: {med[b]:>9,.0f} img/s | shards/files {med[a] / med[b]:.2f}x "
            f"(per CPU second {med_cpu[a] / med_cpu[b]:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--synthetic", type=int, default=4096, help="random 32x32 RGB images (0 = skip)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"read throughput (shards / PNG files), median of {args.repeats} interleaved repeats, batch {args.batch_size}, one process"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench("digits", open_source(ShardConfig()), args.repeats, args.batch_size, Path(tmp))
        if args.synthetic:
            rng = np.random.default_rng(0)
            n_test = args.synthetic // 5
            mk = lambda n: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))  # noqa: E731
            splits = {"train": mk(args.synthetic - n_test), "test": mk(n_test)}
            source = ArraySource("rgb32", "random 32x32 RGB", [str(i) for i in range(10)], splits)
            bench("rgb32", source, args.repeats, args.batch_size, Path(tmp))


if __name__ == "__main__":
    main()
