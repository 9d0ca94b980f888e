"""The shard tar reader and the member decoders: agreement with `tarfile`, damaged shards and images
named by shard and key, and no unpickling ever."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest
from data_support import copy_shards_fixture, first_key, rewrite_member, shards_fixture  # noqa: F401 (the *_fixture names are fixtures)
from PIL import Image

from pipeline.data.loaders import eval_loader, read_split
from pipeline.data.manifest import verify_shards
from pipeline.data.tar import TarFormatError, decode_sample, tar_members
from pipeline.errors import DataError


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
    assert list(tar_members(data)) == want == entries
    last = len(data.rstrip(b"\0"))  # the last member ends with a non-zero byte
    cut = data[: -(-last // 512) * 512]  # all members, no end-of-archive marker
    with pytest.raises(TarFormatError, match="no end-of-archive marker"):
        list(tar_members(cut))
