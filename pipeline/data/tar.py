"""Read samples out of the tar shards, and decode their members safely.

:func:`tar_members` is a minimal, checked tar reader for whole shards held in memory; :func:`tar_samples`
(a WebDataset-style pipeline stage) groups the members of each shard into raw samples
``{"__key__", "__url__", ext: bytes}``; :func:`decode_sample` decodes them.

Decoding is explicit and safe: PNG/JPEG through PIL (kept in the stored mode, ``L`` = 1 channel,
``RGB`` = 3 channels; any other mode is an error), ``cls`` as decimal text, ``json`` with
:func:`json.loads` and ``npy`` with ``numpy.load(allow_pickle=False)``. Nothing is ever unpickled:
webdataset's default decoders are not used (its ``basichandlers`` would unpickle ``.pyd``/``.pickle``
members and its ``"pil"`` mode would turn grayscale into RGB).
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.data.manifest import RERUN
from pipeline.errors import DataError

__all__ = ["IMAGE_MEMBERS", "TarFormatError", "decode_sample", "tar_members", "tar_samples"]

IMAGE_MEMBERS: tuple[str, ...] = ("png", "jpg", "jpeg")
"""Member extensions decoded as images, in order of preference."""

_BLOCK = 512


class TarFormatError(Exception):
    """A damaged tar (internal: :func:`tar_samples` turns it into a :class:`DataError` naming the shard)."""


def _octal(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 (sizes >= 8 GiB)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"invalid {what} field {text[:12]!r}") from None


def _pax_records(payload: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(payload):
        length = int(payload[pos : payload.index(b" ", pos)])
        record = payload[pos : pos + length].decode("utf-8").rstrip("\n")
        key, _, value = record.split(" ", 1)[1].partition("=")
        out[key] = value
        pos += length
    return out


def tar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
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
            raise TarFormatError(f"unexpected end of data at byte {pos} (no end-of-archive marker)")
        if data[pos] == 0 and data.count(0, pos, pos + _BLOCK) == _BLOCK:
            if data.count(0, pos) != n - pos:
                raise TarFormatError(f"data after the end-of-archive marker at byte {pos}")
            break
        field = data[pos + 124 : pos + 136]
        try:
            size = int(field.strip(b"\0 "), 8)
        except ValueError:
            size = _octal(field, "size")
        end = pos + _BLOCK + size
        if end > n:
            raise TarFormatError(f"unexpected end of data in the member at byte {pos}")
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
            raise TarFormatError(f"bad header checksum at byte {pos}")
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


def tar_samples(
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
            for name, data in tar_members(raw):
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
        except (TarFormatError, OSError, ValueError) as exn:
            raise DataError(f"{url}: truncated or corrupt tar shard ({exn}); {RERUN}") from None
        if expected is not None and url in expected and count != expected[url]:
            raise DataError(
                f"{url}: {count} samples in the shard, the manifest says {expected[url]} "
                f"(truncated or modified shard); {RERUN}"
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
            if ext in IMAGE_MEMBERS:
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
