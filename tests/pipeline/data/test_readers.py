"""Shard readers: exact evaluation pass across ranks x workers, disjoint training shares, safe
decoding and clear errors."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import pickle
import tarfile
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lzn.augment import simclr_augment, simclr_views
from pipeline.data.readers import (
    ShardStream,
    _split_by_node,
    _tar_members,
    _TarFormatError,
    augment_kwargs,
    count_check,
    decode_sample,
    eval_loader,
    load_manifest,
    read_split,
    train_loader,
    verify_shards,
)
from pipeline.data.shards import write_source
from pipeline.data.sources import ArraySource, DataError
from pipeline.params import SimCLRAugmentConfig

N_TRAIN, N_TEST, SHARD = 40, 22, 5  # 8 train shards, 5 test shards (the last one partial)


def toy_source(channels: int = 1, seed: int = 0) -> ArraySource:
    rng = np.random.default_rng(seed)
    shape = (6, 5) if channels == 1 else (6, 5, 3)
    mk = lambda n: (rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 3, n))  # noqa: E731
    return ArraySource("toy", "toy images", ["a", "b", "c"], {"train": mk(N_TRAIN), "test": mk(N_TEST)})


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readers") / "shards"
    write_source(toy_source(), out, shard_size=SHARD, seed=0, progress=False)
    return out


@pytest.fixture
def copy_shards(shards, tmp_path) -> Path:
    import shutil

    shutil.copytree(shards, tmp_path / "shards")
    return tmp_path / "shards"


def key_to_shard(shard_dir: Path, split: str) -> dict[str, str]:
    out = {}
    for shard in load_manifest(shard_dir)["splits"][split]["shards"]:
        with tarfile.open(shard_dir / shard["path"]) as tar:
            for name in tar.getnames():
                out[name.split(".", 1)[0]] = shard["path"]
    return out


# ------------------------------------------------------------------------------------ contents
def test_read_split_matches_source(shards):
    src = toy_source()
    for split in ("train", "test"):
        images, labels, keys = read_split(shards, split)
        idx = [int(k.rsplit("-", 1)[1]) for k in keys]
        assert images.dtype == torch.uint8 and images.shape == (len(idx), 1, 6, 5)
        np.testing.assert_array_equal(images[:, 0].numpy(), src.images(split)[idx])
        np.testing.assert_array_equal(labels.numpy(), src.labels(split)[idx])
        assert sorted(idx) == list(range(src.size(split)))


def test_eval_batches_are_float_in_range(shards):
    images, labels, keys = read_split(shards, "test")
    batches = list(eval_loader(shards, "test", 8))
    assert [len(b[2]) for b in batches] == [8, 8, 6]
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and x.shape == (N_TEST, 1, 6, 5)
    assert torch.equal(x, images.float() / 127.5 - 1)  # ordered: same order as read_split
    assert torch.cat([b[1] for b in batches]).dtype == torch.int64
    assert sum((b[2] for b in batches), []) == keys


def test_rgb_keeps_three_channels(tmp_path):
    write_source(toy_source(channels=3), tmp_path / "s", shard_size=7, progress=False)
    images, _, _ = read_split(tmp_path / "s", "train")
    assert images.shape == (N_TRAIN, 3, 6, 5)
    x, _, _ = next(iter(train_loader(tmp_path / "s", "train", 4, seed=0)))
    assert x.shape == (4, 3, 6, 5) and x.min() >= -1 and x.max() <= 1


# --------------------------------------------------------------------------- evaluation: exact
@pytest.mark.parametrize("via_env", [False, True])
def test_eval_every_sample_once_over_2_ranks_x_2_workers(shards, monkeypatch, via_env):
    all_keys = read_split(shards, "test")[2]
    seen = []
    for rank in range(2):
        if via_env:
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("WORLD_SIZE", "2")
            loader = eval_loader(shards, "test", 2, num_workers=2)
        else:
            loader = eval_loader(shards, "test", 2, num_workers=2, rank=rank, world_size=2)
        assert (loader.rank, loader.world_size) == (rank, 2)
        batches = list(loader)
        assert len(batches) == len(loader)
        keys = [k for b in batches for k in b[2]]
        assert loader.seen == len(keys) == loader.expected
        seen.append(keys)
    # rank 0 has shards 0, 2, 4 (5 + 5 + 2 samples), rank 1 shards 1, 3
    assert [len(k) for k in seen] == [12, 10]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(all_keys)


def test_eval_more_splits_than_shards(shards):
    """4 ranks x 2 workers = 8 readers for 5 shards: idle readers yield nothing, nothing repeats."""
    keys = []
    for rank in range(4):
        keys += [
            k for b in eval_loader(shards, "test", 3, num_workers=2, rank=rank, world_size=4) for k in b[2]
        ]
    assert sorted(keys) == sorted(read_split(shards, "test")[2])


def test_count_check(copy_shards):
    assert count_check(10, 10) == 10
    assert count_check(4, 10, local_expected=4) == 10
    with pytest.raises(DataError, match="saw 9 samples, expected 10"):
        count_check(9, 10, what="x")
    # a manifest that promises more samples than the shards hold fails the pass
    path = copy_shards / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["test"]["shards"][0]["samples"] = 6
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"test-000000\.tar: 5 samples in the shard, the manifest says 6"):
        list(eval_loader(copy_shards, "test", 4))


# --------------------------------------------------------------------------- training: shares
@pytest.mark.parametrize("n_shards", [1, 3, 4, 5, 8])
def test_shard_stream_partitions_every_pass(n_shards):
    """Within each pass, the 2 ranks x 2 workers read disjoint shards that cover the split."""
    urls = [f"s{i}" for i in range(n_shards)]
    world, workers, passes = 2, 2, 6
    taken = {}
    for rank in range(world):
        for worker in range(workers):
            # position in the global stream of the k-th url this (rank, worker) reads
            stream = _split_by_node(iter(ShardStream(urls, seed=3)), rank, world)
            mine = islice(stream, worker, None, workers)
            for k, item in enumerate(islice(mine, passes * n_shards)):
                pos = rank + world * (worker + workers * k)
                taken[pos] = (item["url"], rank, worker)
    for p in range(passes):
        in_pass = [taken[i] for i in range(p * n_shards, (p + 1) * n_shards)]
        assert sorted(u for u, _, _ in in_pass) == sorted(urls)  # every shard exactly once per pass
    orders = [[taken[i][0] for i in range(p * n_shards, (p + 1) * n_shards)] for p in range(passes)]
    if n_shards >= 3:
        assert len({tuple(o) for o in orders}) > 1  # a new permutation each pass


def test_train_ranks_read_disjoint_shards(shards):
    """2 ranks x 2 workers, 8 shards of 5: one epoch of 4 batches of 5 per rank is exactly that rank's
    half of the first pass; the halves are disjoint and cover the split."""
    owner = key_to_shard(shards, "train")
    keys, shard_sets = [], []
    for rank in range(2):
        loader = train_loader(
            shards,
            "train",
            5,
            seed=0,
            epoch_length=4,
            num_workers=2,
            shuffle_buffer=0,
            rank=rank,
            world_size=2,
        )
        assert len(loader) == 4
        k = [key for _, _, batch in loader for key in batch]
        keys.append(k)
        shard_sets.append({owner[key] for key in k})
    assert [len(k) for k in keys] == [20, 20]
    assert not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == sorted(owner)
    assert not shard_sets[0] & shard_sets[1] and len(shard_sets[0] | shard_sets[1]) == 8


def test_train_rank_from_env(shards, monkeypatch):
    keys = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        loader = train_loader(shards, "train", 5, seed=0, epoch_length=4, shuffle_buffer=0)
        keys.append({key for _, _, batch in loader for key in batch})
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == N_TRAIN


def test_train_batches_seeded_and_endless(shards):
    def epochs(seed, n=3):
        loader = train_loader(shards, "train", 6, seed=seed, epoch_length=5, shuffle_buffer=16)
        return [[k for _, _, keys in loader for k in keys] for _ in range(n)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert a == b and a != c
    assert a[0] != a[1]  # the stream continues across epochs
    assert all(len(e) == 30 for e in a)  # 5 batches of 6 per epoch, beyond the 40 samples
    x, y, keys = next(iter(train_loader(shards, "train", 6, seed=0)))
    assert x.shape == (6, 1, 6, 5) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and len(keys) == 6
    assert len(train_loader(shards, "train", 6, seed=0)) == N_TRAIN // 6  # default epoch length


# ------------------------------------------------------------------------------------- errors
def rewrite_member(shard_dir: Path, rel: str, key: str, ext: str, data: bytes) -> None:
    """Replace one member of a shard and update the manifest (size, sha) so only its content is bad."""
    path = shard_dir / rel
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for m, payload in members:
            if m.name == f"{key}.{ext}":
                payload = data
            m.size = len(payload)
            tar.addfile(m, io.BytesIO(payload))
    mpath = shard_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    for shard in manifest["splits"][rel.split("/")[0]]["shards"]:
        if shard["path"] == rel:
            shard["bytes"] = path.stat().st_size
            shard["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    mpath.write_text(json.dumps(manifest))


def first_key(shard_dir: Path, rel: str) -> str:
    with tarfile.open(shard_dir / rel) as tar:
        return tar.getnames()[0].split(".", 1)[0]


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match=r"manifest\.json: shard manifest not found; run `dvc repro shard`"):
        load_manifest(tmp_path)
    with pytest.raises(DataError, match="dvc repro shard"):
        train_loader(tmp_path, "train", 4, seed=0)


def test_unknown_split(shards):
    with pytest.raises(DataError, match=r"no split 'val' \(has test, train\)"):
        eval_loader(shards, "val", 4)


def test_truncated_shard_named(copy_shards):
    path = copy_shards / "train" / "train-000003.tar"
    path.write_bytes(path.read_bytes()[:1500])
    for fn in (
        lambda: read_split(copy_shards, "train"),
        lambda: train_loader(copy_shards, "train", 4, seed=0),
    ):
        with pytest.raises(DataError, match=r"train-000003\.tar: truncated or modified shard \(1500 bytes"):
            fn()
    with pytest.raises(DataError, match=r"train-000003\.tar"):
        verify_shards(copy_shards)


def test_corrupt_tar_named(copy_shards):
    """Same size as the manifest says, but garbage in a member header: the tar error names the shard."""
    path = copy_shards / "test" / "test-000001.tar"
    raw = bytearray(path.read_bytes())
    raw[512 * 2 : 512 * 2 + 200] = b"\xff" * 200  # second member's header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"test-000001\.tar: truncated or corrupt tar shard"):
        list(eval_loader(copy_shards, "test", 4))
    with pytest.raises(DataError, match=r"test-000001\.tar: sha256 differs"):
        verify_shards(copy_shards, "test")


def test_corrupt_image_names_shard_and_key(copy_shards):
    rel = "train/train-000002.tar"
    key = first_key(copy_shards, rel)
    rewrite_member(copy_shards, rel, key, "png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DataError, match=rf"train-000002\.tar: sample {key}: corrupt image"):
        read_split(copy_shards, "train")
    # also through DataLoader workers
    with pytest.raises(DataError, match=rf"train-000002\.tar: sample {key}: corrupt image"):
        list(eval_loader(copy_shards, "train", 4, num_workers=2))


def test_unsupported_mode_names_shard_and_key(copy_shards):
    rel = "test/test-000000.tar"
    key = first_key(copy_shards, rel)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 5, 4), np.uint8), mode="RGBA").save(buf, format="PNG")
    rewrite_member(copy_shards, rel, key, "png", buf.getvalue())
    with pytest.raises(DataError, match=rf"test-000000\.tar: sample {key}: unsupported image mode 'RGBA'"):
        read_split(copy_shards, "test")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(buf, format="PNG")
    rewrite_member(copy_shards, rel, key, "png", buf.getvalue())
    with pytest.raises(DataError, match=rf"sample {key}: image shape \[3, 6, 5\].*manifest's \[1, 6, 5\]"):
        read_split(copy_shards, "test")


def test_decoders_never_unpickle():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    out = decode_sample(
        {
            "__key__": "k",
            "__url__": "u",
            "pyd": pickle.dumps(Boom()),
            "pickle": pickle.dumps(Boom()),
            "cls": b"3",
            "json": b'{"a": 1}',
        }
    )
    assert out == {"__key__": "k", "__url__": "u", "cls": 3, "json": {"a": 1}}
    arr = io.BytesIO()
    np.save(arr, np.arange(3))
    assert decode_sample({"npy": arr.getvalue()})["npy"].tolist() == [0, 1, 2]
    obj = io.BytesIO()
    np.save(obj, np.array([Boom()], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"cannot decode \.npy"):
        decode_sample({"__key__": "k", "__url__": "u", "npy": obj.getvalue()})


# ------------------------------------------------------------------------------- augment adapter
def test_augment_kwargs_match_simclr_views():
    cfg = SimCLRAugmentConfig()
    kw = augment_kwargs(cfg)
    params = set(inspect.signature(simclr_augment).parameters) - {"x", "generator"}  # simclr_views passes them on
    assert set(kw) == params
    g = torch.Generator().manual_seed(0)
    v1, v2 = simclr_views(torch.rand(4, 1, 8, 8) * 2 - 1, generator=g, **kw)
    assert v1.shape == v2.shape == (4, 1, 8, 8)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_reader_agrees_with_tarfile(fmt):
    """The fast shard reader returns what `tarfile` does for ustar, GNU and pax archives (long and
    non-ASCII names, directories, empty members), and rejects a missing end-of-archive marker."""
    entries = [("a/x.cls", b"1"), ("a/x.png", b"\x89PNG" * 300), ("b/" + "n" * 120 + ".json", b"{}")]
    entries += [("ü/é.txt", b""), ("c/y.npy", bytes(range(256)) * 5)]
    if fmt == tarfile.USTAR_FORMAT:
        entries = [(n, d) for n, d in entries if n.isascii() and len(n) <= 100]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        folder = tarfile.TarInfo("a")
        folder.type = tarfile.DIRTYPE  # a non-regular-file entry: skipped
        tar.addfile(folder)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        want = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]
    assert list(_tar_members(data)) == want == entries
    last = len(data.rstrip(b"\0"))  # the last member ends with a non-zero byte
    cut = data[: -(-last // 512) * 512]  # all members, no end-of-archive marker
    with pytest.raises(_TarFormatError, match="no end-of-archive marker"):
        list(_tar_members(cut))


def _dist_rank(rank: int, world: int, init_file: str, shard_dir: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        loader = eval_loader(shard_dir, "test", 4)
        res: dict = {"rank": [loader.rank, loader.world_size], "eval": [k for b in loader for k in b[2]]}
        train = train_loader(shard_dir, "train", 5, seed=0, epoch_length=4, shuffle_buffer=0)
        res["train"] = [k for b in train for k in b[2]]
        try:  # rank 0 reports one sample too few: every rank must raise, none may hang
            count_check(loader.expected - (rank == 0), N_TEST, local_expected=loader.expected)
        except DataError as err:
            res["error"] = str(err)
        Path(out, f"{rank}.json").write_text(json.dumps(res))
    finally:
        dist.destroy_process_group()


def test_with_a_torch_distributed_process_group(shards, tmp_path, monkeypatch):
    """Ranks come from an initialised (gloo) process group; the count check all-reduces."""
    import multiprocessing as mp

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = mp.get_context("fork")
    args = (str(tmp_path / "init"), str(shards), str(tmp_path))
    procs = [ctx.Process(target=_dist_rank, args=(r, 2, *args)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    res = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in res] == [[0, 2], [1, 2]]
    assert sorted(res[0]["eval"] + res[1]["eval"]) == sorted(read_split(shards, "test")[2])
    assert (
        not set(res[0]["train"]) & set(res[1]["train"]) and len(res[0]["train"] + res[1]["train"]) == N_TRAIN
    )
    for r in res:
        assert f"saw {N_TEST - 1} samples over all ranks, the manifest says {N_TEST}" in r["error"]
