"""Partition of the shards over ranks x loader workers: disjoint training shares that cover every
pass, an exact evaluation pass, and ranks from RANK/WORLD_SIZE or a torch.distributed process group."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from data_support import N_TEST, N_TRAIN, key_to_shard, shards_fixture  # noqa: F401 (the *_fixture names are fixtures)

from pipeline.data.loaders import count_check, eval_loader, read_split, train_loader
from pipeline.data.partition import ShardStream, split_by_node
from pipeline.errors import DataError


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
            stream = split_by_node(iter(ShardStream(urls, seed=3)), rank, world)
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


# ------------------------------------------------------------------- torch.distributed process group
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
