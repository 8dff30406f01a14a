"""The decoded-image cache (``data.decoded_cache``): each training image decoded and resized once (short
side = ``data.transforms.resize``, as the eval transform resizes) into one memory-mapped uint8 file
under ``data.cache_dir/decoded/``; every epoch's random crops and flips are cut from it.

Keyed like the feature cache: each file's path, size and mtime (or its pixels), its box, and the resize
settings, so an edited image or another resolution makes a new store. Evaluation images read from the
store equal the ones decoded from disk (resizing an image to the size it has is a copy); training crops
are cut from the resized image instead of the original, a small change in what each crop holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from timm.data.transforms import str_to_interp_mode
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from fgvc.data.images import ImageList
from fgvc.data.splits import DataSplits
from fgvc.errors import DataError
from fgvc.progress import track

FORMAT = 1


class _Resized(Dataset):
    """Decoded, resized images as HxWx3 uint8 arrays (what the store holds)."""

    def __init__(self, images: ImageList, resize: T.Resize):
        self.images, self.resize = images, resize

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.array(self.resize(self.images.load(index)), dtype=np.uint8)


class DecodedImages:
    """An ImageList whose ``load`` reads the decoded store instead of decoding the file; labels, class
    names and length are the list's own. Each process maps the store on first use."""

    def __init__(self, images: ImageList, store: Path):
        self.images, self.store = images, Path(store)
        index = np.load(self.store.with_suffix(".index.npy"))
        self.offsets, self.shapes = index[:, 0], index[:, 1:3]
        self._pixels: Optional[np.memmap] = None

    def __len__(self) -> int:
        return len(self.images)

    def __getattr__(self, name: str):  # labels, class_names, class_counts, key ... of the list
        if name == "images":
            raise AttributeError(name)
        return getattr(self.images, name)

    def __getstate__(self) -> dict:  # worker processes map the file themselves
        return {**self.__dict__, "_pixels": None}

    def load(self, index: int) -> Image.Image:
        if self._pixels is None:
            self._pixels = np.memmap(self.store, dtype=np.uint8, mode="r")
        height, width = (int(v) for v in self.shapes[index])
        start = int(self.offsets[index])
        return Image.fromarray(np.array(self._pixels[start:start + height * width * 3]).reshape(height, width, 3))


def store_key(images: ImageList, resize: int, interpolation: str) -> str:
    payload = {"images": images.fingerprints(), "resize": resize, "interpolation": interpolation, "format": FORMAT}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def decoded_images(images: ImageList, resize: int, interpolation: str, cache_dir: Path,
                   num_workers: int = 0) -> DecodedImages:
    """``images`` backed by a decoded store, built on first use (decoded in ``num_workers`` processes).

    Two runs building the same store at once each write their own file and move it into place; the
    index is moved last, so a store with an index is complete."""
    folder = Path(cache_dir).expanduser() / "decoded"
    store = folder / f"{store_key(images, resize, interpolation)}.u8"
    if not store.with_suffix(".index.npy").is_file():
        _build(images, T.Resize(resize, interpolation=str_to_interp_mode(interpolation)), store, num_workers)
    return DecodedImages(images, store)


def _build(images: ImageList, resize: T.Resize, store: Path, num_workers: int) -> None:
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=store.parent, suffix=".part")
    except OSError as exc:
        raise DataError(f"data.cache_dir: cannot write the decoded-image cache in {store.parent}: {exc}") from None
    index = np.zeros((len(images), 3), dtype=np.int64)
    loader = DataLoader(_Resized(images, resize), batch_size=None, num_workers=num_workers)
    offset = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for i, pixels in enumerate(track(loader, f"decoding {len(images)} images once", total=len(images))):
                pixels = np.ascontiguousarray(pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels)
                out.write(pixels.tobytes())
                index[i] = (offset, pixels.shape[0], pixels.shape[1])
                offset += pixels.size
        os.replace(partial, store)
        index_partial = store.with_suffix(f".{os.getpid()}.part.npy")
        np.save(index_partial, index)
        os.replace(index_partial, store.with_suffix(".index.npy"))
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def with_decoded_images(splits: DataSplits, resize: int, interpolation: str, cache_dir: Path,
                        num_workers: int = 0) -> DataSplits:
    """``splits`` with its train and val files read from decoded stores (in-memory pixels stay as they are)."""
    interpolation = "bilinear" if interpolation == "random" else interpolation

    def decoded(images: Optional[ImageList]):
        if images is None or images.paths is None or not len(images):
            return images
        return decoded_images(images, resize, interpolation, cache_dir, num_workers)

    return dataclasses.replace(splits, train=decoded(splits.train), val=decoded(splits.val))
