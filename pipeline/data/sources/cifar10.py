"""Source ``cifar10``: the standard ``cifar-10-python.tar.gz`` archive or its extracted ``cifar-10-batches-py/``.

The folder holds ``data_batch_1..5``, ``test_batch`` and ``batches.meta``: the published 50000/10000
split, class names from ``batches.meta``.

Pickle: the CIFAR-10 batches are Python pickles. They are read **only** here, **only** from the
standard CIFAR-10 archive layout, and through a restricted unpickler that can build nothing but
numpy arrays and plain containers (any other global in the stream is an error). No other code in
the project ever unpickles data; the shards written from it hold PNG/JSON/text only.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.sources.base import ArraySource
from pipeline.errors import DataError

__all__ = ["read_cifar10"]

_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_EXPECTED = (
    f"expected the standard CIFAR-10 python archive ({_CIFAR_ARCHIVE}, from "
    f"https://www.cs.toronto.edu/~kriz/cifar.html) or its extracted folder {_CIFAR_FOLDER}/ holding "
    "data_batch_1..5, test_batch and batches.meta"
)


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batches: only numpy arrays/dtypes, bytes and builtin containers
    can be built; any other global (a function or class to call) is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol <= 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            return _numpy_reconstruct()
        if name == "_frombuffer":
            try:
                from numpy._core.numeric import _frombuffer
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.numeric import _frombuffer
            return _frombuffer
        return getattr(np, name)


def _unpickle_cifar(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exn:  # noqa: BLE001 - any failure is a bad file
        raise DataError(f"{where}: not a valid CIFAR-10 batch ({type(exn).__name__}: {exn})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a valid CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _locate_cifar(path: str) -> tuple[str, Path]:
    """Return ``("archive", file)`` or ``("folder", dir)`` for a CIFAR-10 path, or raise."""
    if not path:
        raise DataError(f"shard.path: required for source cifar10; {_CIFAR_EXPECTED}")
    p = Path(path)
    if p.is_file():
        return "archive", p
    if p.is_dir():
        if (p / "data_batch_1").is_file() or (p / "batches.meta").is_file():
            return "folder", p
        if (p / _CIFAR_FOLDER).is_dir():
            return "folder", p / _CIFAR_FOLDER
        if (p / _CIFAR_ARCHIVE).is_file():
            return "archive", p / _CIFAR_ARCHIVE
        raise DataError(f"{p}: no CIFAR-10 data in this folder; {_CIFAR_EXPECTED}")
    raise DataError(f"{p}: not found; {_CIFAR_EXPECTED}")


def _read_cifar_members(kind: str, where: Path) -> dict[str, bytes]:
    names = ["batches.meta", *_CIFAR_BATCHES["train"], *_CIFAR_BATCHES["test"]]
    out: dict[str, bytes] = {}
    if kind == "folder":
        for name in names:
            f = where / name
            if not f.is_file():
                raise DataError(f"{f}: missing; {_CIFAR_EXPECTED}")
            out[name] = f.read_bytes()
        return out
    try:
        with tarfile.open(where, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                parent = member.name.rsplit("/", 2)[-2] if "/" in member.name else ""
                if member.isfile() and base in names and parent == _CIFAR_FOLDER:
                    fh = tar.extractfile(member)
                    assert fh is not None
                    out[base] = fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exn:
        raise DataError(f"{where}: unreadable or truncated archive ({exn}); {_CIFAR_EXPECTED}") from None
    missing = [n for n in names if n not in out]
    if missing:
        raise DataError(f"{where}: archive lacks {_CIFAR_FOLDER}/{missing[0]}; {_CIFAR_EXPECTED}")
    return out


def read_cifar10(path: str | os.PathLike) -> ArraySource:
    """CIFAR-10 from ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``: RGB uint8 ``[n, 32, 32, 3]``.

    Rows of ``b"data"`` are 3072 bytes: the R, G and B 32x32 planes, each row-major. The train split
    is data_batch_1..5 in order (50000 images), the test split test_batch (10000); the key/index of a
    sample is its position in that order.
    """
    kind, where = _locate_cifar(str(path))
    members = _read_cifar_members(kind, where)
    meta = _unpickle_cifar(members["batches.meta"], f"{where}:batches.meta")
    if "label_names" not in meta:
        raise DataError(f"{where}:batches.meta: missing b'label_names'; {_CIFAR_EXPECTED}")
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    extra: dict[str, list[dict[str, Any]]] = {}
    for split, batches in _CIFAR_BATCHES.items():
        images, labels, rows = [], [], []
        for name in batches:
            at = f"{where}:{name}"
            batch = _unpickle_cifar(members[name], at)
            if "data" not in batch or "labels" not in batch:
                raise DataError(f"{at}: missing b'data' or b'labels'; {_CIFAR_EXPECTED}")
            data = np.asarray(batch["data"])
            lab = np.asarray(batch["labels"], dtype=np.int64).reshape(-1)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise DataError(f"{at}: b'data' must be uint8 [n, 3072], got {data.dtype} {list(data.shape)}")
            if len(data) != len(lab):
                raise DataError(f"{at}: {len(data)} images but {len(lab)} labels")
            if len(lab) and (lab.min() < 0 or lab.max() >= len(class_names)):
                raise DataError(f"{at}: labels outside 0..{len(class_names) - 1}")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
            rows.extend({"file": name, "row": r} for r in range(len(lab)))
        splits[split] = (np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
        extra[split] = rows
    n_train, n_test = len(splits["train"][1]), len(splits["test"][1])
    return ArraySource(
        name="cifar10",
        description=f"CIFAR-10 python batches from {where}: {n_train} train / {n_test} test 32x32 RGB images, "
        f"{len(class_names)} classes",
        class_names=class_names,
        splits=splits,
        meta=extra,
    )
