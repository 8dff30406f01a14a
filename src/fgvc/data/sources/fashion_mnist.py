"""Fashion-MNIST (70,000 real 28x28 product photos, 10 classes), read through torchvision.

Debian's package `dataset-fashion-mnist` puts the four gzipped IDX files in
/usr/share/datasets/fashion-mnist/ (`apt-get install dataset-fashion-mnist`). torchvision reads
the unpacked files from ROOT/FashionMNIST/raw/, so a folder of .gz files is unpacked once into
data.cache_dir. Users who are online can set data.download: true instead.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
from torchvision.datasets import FashionMNIST

from fgvc.config import DataConfig
from fgvc.data.images import ImageList
from fgvc.data.sources.base import SourceParts
from fgvc.errors import DataError
from fgvc.registry import register_source

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HINT = (
    "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist/); "
    "or set data.download: true when online."
)


def _torchvision_root(root: Path, cache_dir: Path) -> Path:
    """A folder with FashionMNIST/raw/<unpacked IDX files>, unpacking a folder of .gz files if needed."""
    if all((root / "FashionMNIST" / "raw" / name).is_file() for name in FILES):
        return root
    if all((root / name).is_file() for name in FILES):  # unpacked files directly in root
        raw_sources = {name: root / name for name in FILES}
    elif all((root / f"{name}.gz").is_file() for name in FILES):
        raw_sources = {name: root / f"{name}.gz" for name in FILES}
    else:
        expected = ", ".join(f"{n}.gz" for n in FILES)
        raise DataError(f"Fashion-MNIST: {root} does not hold {expected}. {HINT}")
    target = cache_dir.expanduser() / "fashion-mnist" / "FashionMNIST" / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for name, source in raw_sources.items():
        destination = target / name
        stamp = target / f"{name}.source"
        key = f"{source.resolve()} {source.stat().st_size} {source.stat().st_mtime_ns}"
        if destination.is_file() and stamp.is_file() and stamp.read_text() == key:
            continue
        opener = gzip.open if source.suffix == ".gz" else open
        try:
            with opener(source, "rb") as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as exc:
            raise DataError(f"Fashion-MNIST: cannot unpack {source}: {exc}") from None
        stamp.write_text(key)
    return target.parent.parent


def load_fashion_mnist(root: Optional[Path], cache_dir: Path, download: bool = False) -> SourceParts:
    """Official 60,000 train / 10,000 test images, in memory."""
    root = Path(root or DEBIAN_ROOT).expanduser()
    if download:
        tv_root = root
    else:
        if not root.is_dir():
            raise DataError(f"Fashion-MNIST: data folder not found: {root}. {HINT}")
        tv_root = _torchvision_root(root, cache_dir)
    parts = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = FashionMNIST(root=str(tv_root), train=train, download=download)
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"Fashion-MNIST: cannot read {tv_root}: {exc}. {HINT}") from None
        pixels = ds.data.numpy()
        parts[split] = ImageList(
            class_names=list(ds.classes),
            labels=ds.targets.numpy(),
            pixels=pixels,
            meta={"index": np.arange(len(pixels))},
            name=f"fashion_mnist/{split}",
        )
    return SourceParts(train=parts["train"], test=parts["test"])


@register_source("fashion_mnist")
def source_fashion_mnist(cfg: DataConfig) -> SourceParts:
    """Fashion-MNIST (IDX files)"""
    return load_fashion_mnist(cfg.root, cfg.cache_dir, download=cfg.download)
