"""Source ``imagefolder``: ``root/train/<class>/*.png|jpg|jpeg`` and ``root/test/<class>/...``.

``val`` is accepted in place of ``test``. Class order = sorted folder names of ``train``. Images are
decoded with PIL on demand (so huge datasets stream); the dataset is 1-channel only if every image
is grayscale. ``shard.image_size`` > 0 resizes the shorter side and centre-crops
(:func:`resize_center_crop`, PIL bicubic); with 0 all images must share one size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.sources.base import SPLITS, Sample, Source, SourceInfo, check_split, sample_key
from pipeline.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderSource", "read_imagefolder", "resize_center_crop"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
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
        check_split(split)
        return len(self._files[split])

    def labels(self, split: str) -> np.ndarray:
        check_split(split)
        return np.array([label for _, label in self._files[split]], dtype=np.int64)

    def read(self, split: str, index: int) -> Sample:
        from PIL import Image, UnidentifiedImageError

        check_split(split)
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
