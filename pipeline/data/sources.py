"""Readers of the raw image sources that ``stages/shard.py`` turns into WebDataset shards.

Three sources (``shard.source`` in ``params.yaml``):

- ``digits`` — scikit-learn's bundled 8x8 ``load_digits`` images (values 0..16, mapped to uint8
  0..255 by ``round(v * 255 / 16)``), split into train/test by a seeded, stratified split with
  ``shard.test_fraction``.
- ``cifar10`` — the standard ``cifar-10-python.tar.gz`` archive or its extracted
  ``cifar-10-batches-py/`` folder (``data_batch_1..5``, ``test_batch``, ``batches.meta``): the
  published 50000/10000 split, class names from ``batches.meta``.
- ``imagefolder`` — ``root/train/<class>/*.png|jpg|jpeg`` and ``root/test/<class>/...`` (``val``
  is accepted in place of ``test``); optional resize of the shorter side + centre crop to
  ``shard.image_size`` (PIL bicubic). Class order = sorted folder names of ``train``.

Every source is a :class:`Source`: per split, ``len``, labels, and ``read(split, index)`` returning
one :class:`Sample` (key, uint8 ``[H, W]`` or ``[H, W, 3]`` array, label, JSON metadata).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DataError

__all__ = [
    "SPLITS",
    "ArraySource",
    "DataError",
    "ImageFolderSource",
    "Sample",
    "Source",
    "SourceInfo",
    "open_source",
    "read_cifar10",
    "read_digits",
    "read_imagefolder",
]

SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    """One image of a source: ``image`` is uint8 ``[H, W]`` (grayscale) or ``[H, W, 3]`` (RGB)."""

    key: str
    image: np.ndarray
    label: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceInfo:
    """What the manifest records about a source."""

    name: str
    description: str
    class_names: tuple[str, ...]
    channels: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(C, H, W)``."""
        return (self.channels, self.height, self.width)


class Source:
    """Random-access view of a source's ``train`` and ``test`` splits."""

    info: SourceInfo

    def __len__(self) -> int:
        return sum(self.size(s) for s in SPLITS)

    def size(self, split: str) -> int:
        raise NotImplementedError

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split, int64 ``[n]`` in source order."""
        raise NotImplementedError

    def read(self, split: str, index: int) -> Sample:
        raise NotImplementedError

    def samples(self, split: str, order: Sequence[int] | None = None) -> Iterator[Sample]:
        """Yield the samples of ``split`` in ``order`` (default: source order)."""
        indices = range(self.size(split)) if order is None else order
        for i in indices:
            yield self.read(split, int(i))


def sample_key(split: str, index: int) -> str:
    """WebDataset key of a sample: ``<split>-<source index, 7 digits>`` (no dots, unique per split)."""
    return f"{split}-{index:07d}"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


# ------------------------------------------------------------------------------ in-memory arrays
class ArraySource(Source):
    """A source held in memory: per split, uint8 images ``[n, H, W]`` or ``[n, H, W, 3]`` and labels."""

    def __init__(
        self,
        name: str,
        description: str,
        class_names: Sequence[str],
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        meta: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        shapes = set()
        self._images: dict[str, np.ndarray] = {}
        self._labels: dict[str, np.ndarray] = {}
        for split in SPLITS:
            if split not in splits:
                raise DataError(f"{name}: split {split!r} is missing")
            images, labels = splits[split]
            images = np.asarray(images)
            labels = np.asarray(labels).astype(np.int64).reshape(-1)
            if (
                images.dtype != np.uint8
                or images.ndim not in (3, 4)
                or (images.ndim == 4 and images.shape[3] != 3)
            ):
                raise DataError(
                    f"{name}/{split}: expected uint8 images [n,H,W] or [n,H,W,3], "
                    f"got {images.dtype} {list(images.shape)}"
                )
            if len(images) != len(labels):
                raise DataError(f"{name}/{split}: {len(images)} images but {len(labels)} labels")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
                raise DataError(
                    f"{name}/{split}: labels must lie in 0..{len(class_names) - 1}, "
                    f"got {int(labels.min())}..{int(labels.max())}"
                )
            shapes.add(images.shape[1:])
            self._images[split] = images
            self._labels[split] = labels
        if len(shapes) != 1:
            raise DataError(f"{name}: train and test images differ in shape: {sorted(shapes)}")
        (shape,) = shapes
        self._meta = meta or {}
        self.info = SourceInfo(
            name=name,
            description=description,
            class_names=tuple(class_names),
            channels=1 if len(shape) == 2 else 3,
            height=int(shape[0]),
            width=int(shape[1]),
        )

    def size(self, split: str) -> int:
        _check_split(split)
        return len(self._labels[split])

    def labels(self, split: str) -> np.ndarray:
        _check_split(split)
        return self._labels[split]

    def images(self, split: str) -> np.ndarray:
        """All images of a split, uint8 ``[n, H, W]`` or ``[n, H, W, 3]``."""
        _check_split(split)
        return self._images[split]

    def read(self, split: str, index: int) -> Sample:
        _check_split(split)
        meta = {"index": index, "split": split, "source": self.info.name}
        extra = self._meta.get(split)
        if extra:
            meta.update(extra[index])
        return Sample(
            sample_key(split, index), self._images[split][index], int(self._labels[split][index]), meta
        )


# -------------------------------------------------------------------------------------- digits
def read_digits(test_fraction: float = 0.2, seed: int = 0) -> ArraySource:
    """scikit-learn's ``load_digits`` (1797 8x8 grayscale images), seeded stratified split.

    Pixel values 0..16 become uint8 ``round(v * 255 / 16)``. The key/index of a sample is its row
    in ``load_digits()``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"shard.test_fraction: must lie in (0, 1), got {test_fraction}")
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # [1797, 8, 8]
    target = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(target)), test_size=test_fraction, stratify=target, random_state=seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    splits = {"train": train_idx, "test": test_idx}
    return _IndexedArraySource(
        name="digits",
        description=(
            f"scikit-learn load_digits: {len(target)} 8x8 grayscale images, 10 classes, values 0..16 "
            f"scaled to 0..255; stratified split test_fraction={test_fraction} seed={seed}"
        ),
        class_names=[str(int(c)) for c in digits.target_names],
        images=images,
        labels=target,
        splits=splits,
    )


class _IndexedArraySource(ArraySource):
    """An :class:`ArraySource` whose splits are index subsets of one array (keys = global rows)."""

    def __init__(self, name, description, class_names, images, labels, splits) -> None:
        super().__init__(
            name,
            description,
            class_names,
            {s: (images[idx], labels[idx]) for s, idx in splits.items()},
        )
        self._rows = {s: np.asarray(idx) for s, idx in splits.items()}

    def read(self, split: str, index: int) -> Sample:
        sample = super().read(split, index)
        row = int(self._rows[split][index])
        meta = dict(sample.meta, index=row)
        return Sample(sample_key(split, row), sample.image, sample.label, meta)


# ------------------------------------------------------------------------------------- cifar10
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


# --------------------------------------------------------------------------------- imagefolder
_COLOUR_MODES = {"RGB", "P", "CMYK", "YCbCr"}
_GRAY_MODES = {"1", "L"}
_IMAGEFOLDER_EXPECTED = (
    "expected root/train/<class>/*.png|jpg|jpeg and root/test/<class>/... (or root/val/<class>/...)"
)


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_folders(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def resize_center_crop(img, size: int):
    """Resize the shorter side to ``size`` (PIL bicubic), then centre-crop to ``size x size``.

    Sizes follow torchvision's ``Resize(int)`` + ``CenterCrop``: the longer side becomes
    ``int(size * long / short)``; the crop's top/left offset is ``round((dim - size) / 2)``.
    """
    from PIL import Image

    w, h = img.size
    if (w, h) != (size, size):
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BICUBIC)
        top = int(round((nh - size) / 2.0))
        left = int(round((nw - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    return img


class ImageFolderSource(Source):
    """Class sub-folders of image files, decoded with PIL on demand (streams huge datasets)."""

    def __init__(self, root: str | os.PathLike, image_size: int = 0) -> None:
        from PIL import Image, UnidentifiedImageError

        root_s = str(root)
        if not root_s:
            raise DataError(f"shard.path: required for source imagefolder; {_IMAGEFOLDER_EXPECTED}")
        self.root = Path(root_s)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: folder not found; {_IMAGEFOLDER_EXPECTED}")
        split_dirs = {"train": self.root / "train"}
        split_dirs["test"] = self.root / "test" if (self.root / "test").is_dir() else self.root / "val"
        for split, d in split_dirs.items():
            if not d.is_dir():
                raise DataError(f"{self.root / split}: folder not found; {_IMAGEFOLDER_EXPECTED}")
        class_names = [p.name for p in _class_folders(split_dirs["train"])]
        if not class_names:
            raise DataError(f"{split_dirs['train']}: no class folders; {_IMAGEFOLDER_EXPECTED}")
        self._files: dict[str, list[tuple[Path, int]]] = {}
        for split, d in split_dirs.items():
            items: list[tuple[Path, int]] = []
            for folder in _class_folders(d):
                if folder.name not in class_names:
                    raise DataError(
                        f"{folder}: class {folder.name!r} has no folder in {split_dirs['train']} "
                        f"(train classes: {', '.join(class_names)})"
                    )
                files = _list_images(folder)
                if not files:
                    raise DataError(f"{folder}: empty class folder (no .png/.jpg/.jpeg files)")
                label = class_names.index(folder.name)
                items.extend((f, label) for f in files)
            if not items:
                raise DataError(f"{d}: no images; {_IMAGEFOLDER_EXPECTED}")
            self._files[split] = items
        # Header-only scan: the channel count (1 only if every image is grayscale), a uniform size
        # when no resize is asked for, and an early, named error for unreadable files or modes.
        colour, sizes = False, {}
        for split in SPLITS:
            for f, _ in self._files[split]:
                try:
                    with Image.open(f) as img:
                        mode, size = img.mode, img.size
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exn:
                    raise DataError(f"{f}: not a readable image ({exn})") from None
                self._check_mode(mode, f)
                colour |= mode in _COLOUR_MODES
                sizes.setdefault(size, f)
        if image_size == 0 and len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise DataError(
                f"{f2}: image size {s2[0]}x{s2[1]} differs from {f1} ({s1[0]}x{s1[1]}); "
                "set shard.image_size to resize and centre-crop every image"
            )
        self.image_size = image_size
        self._gray = not colour
        w, h = (image_size, image_size) if image_size else next(iter(sizes))
        n = {s: len(v) for s, v in self._files.items()}
        resize = (
            f", resized (shorter side) + centre-cropped to {image_size} (PIL bicubic)" if image_size else ""
        )
        self.info = SourceInfo(
            name="imagefolder",
            description=(
                f"image folder {self.root} ({split_dirs['test'].name}/ as test): {n['train']} train / "
                f"{n['test']} test images, {len(class_names)} classes{resize}"
            ),
            class_names=tuple(class_names),
            channels=1 if self._gray else 3,
            height=h,
            width=w,
        )

    @staticmethod
    def _check_mode(mode: str, f: Path) -> None:
        if mode not in _GRAY_MODES | _COLOUR_MODES:
            raise DataError(
                f"{f}: unsupported image mode {mode!r} (supported: 1, L, P, RGB, CMYK, YCbCr; "
                "convert images with alpha or more than 8 bits per channel first)"
            )

    def size(self, split: str) -> int:
        _check_split(split)
        return len(self._files[split])

    def labels(self, split: str) -> np.ndarray:
        _check_split(split)
        return np.array([label for _, label in self._files[split]], dtype=np.int64)

    def read(self, split: str, index: int) -> Sample:
        from PIL import Image, UnidentifiedImageError

        _check_split(split)
        f, label = self._files[split][index]
        try:
            with Image.open(f) as img:
                self._check_mode(img.mode, f)
                if img.mode == "P" and "transparency" in img.info:
                    raise DataError(f"{f}: unsupported image mode 'P' with transparency (convert first)")
                img = img.convert("L" if self._gray else "RGB")
                if self.image_size:
                    img = resize_center_crop(img, self.image_size)
                array = np.asarray(img, dtype=np.uint8)
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exn:
            raise DataError(f"{f}: cannot decode image ({exn})") from None
        if array.shape[:2] != (self.info.height, self.info.width):
            raise DataError(
                f"{f}: image size {array.shape[1]}x{array.shape[0]} differs from "
                f"{self.info.width}x{self.info.height}; set shard.image_size"
            )
        rel = f.relative_to(self.root).as_posix()
        meta = {"index": index, "split": split, "source": "imagefolder", "file": rel}
        return Sample(sample_key(split, index), np.ascontiguousarray(array), label, meta)


def read_imagefolder(root: str | os.PathLike, image_size: int = 0) -> ImageFolderSource:
    """An image-folder source (see the module docstring for the layout)."""
    return ImageFolderSource(root, image_size)


# -------------------------------------------------------------------------------------- dispatch
def open_source(config: Any) -> Source:
    """The source named by a :class:`pipeline.params.ShardConfig` (``source``, ``path``, ...)."""
    if config.source in ("digits", "cifar10"):
        source = (
            read_digits(config.test_fraction, config.seed)
            if config.source == "digits"
            else read_cifar10(config.path)
        )
        size = source.info.height
        if config.image_size not in (0, size):
            raise DataError(
                f"shard.image_size: resizing is only done for source imagefolder; {config.source} images "
                f"are {size}x{size}, so use 0 or {size} (got {config.image_size})"
            )
        return source
    if config.source == "imagefolder":
        return read_imagefolder(config.path, config.image_size)
    raise DataError(
        f"shard.source: unknown source {config.source!r}; expected digits, cifar10 or imagefolder"
    )
