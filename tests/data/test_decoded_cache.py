"""The decoded-image cache on real ELPV images: the store gives the eval transform's images exactly,
is keyed by file and resize settings, trains reproducibly (workers included) and fails clearly."""

import os

import pytest
import torch

from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.data.decoded_cache import decoded_images
from fgvc.data.images import ImageList
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import DataError
from fgvc.train.run import train

from builders import history_rows as history


@pytest.fixture(scope="module")
def elpv_images():
    return load_data(load_config(None, ["data.name=elpv"]).data).train.subset(range(12))


def test_the_store_gives_the_eval_images_of_the_files(elpv_images, tmp_path):
    cfg = load_config(None, ["data.name=elpv", "data.transforms.resize=72", "data.transforms.crop=64",
                             "model.name=tf_efficientnet_lite0"])
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    stored = decoded_images(elpv_images, 72, norm.interpolation, tmp_path)
    assert len(stored) == 12 and list(stored.labels) == list(elpv_images.labels)
    assert stored.load(3).size == (72, 72)  # ELPV cells are square: short side = resize
    evaluate = build_transform(cfg.data.transforms, norm, train=False, uint8=True)
    for index in range(len(stored)):
        assert torch.equal(evaluate(stored.load(index)), evaluate(elpv_images.load(index)))


def test_the_store_is_built_once_and_keyed_by_files_and_resize(elpv_images, tmp_path):
    first = decoded_images(elpv_images, 48, "bilinear", tmp_path)
    built = first.store.stat().st_mtime_ns
    assert decoded_images(elpv_images, 48, "bilinear", tmp_path).store == first.store
    assert first.store.stat().st_mtime_ns == built  # reused, not rebuilt
    assert decoded_images(elpv_images, 56, "bilinear", tmp_path).store != first.store
    assert decoded_images(elpv_images, 48, "bicubic", tmp_path).store != first.store
    copy = tmp_path / "copy"
    copy.mkdir()
    paths = []
    for path in elpv_images.paths[:3]:
        paths.append(copy / path.name)
        paths[-1].write_bytes(path.read_bytes())
    few = ImageList(elpv_images.class_names, elpv_images.labels[:3], paths=paths)
    before = decoded_images(few, 48, "bilinear", tmp_path).store
    os.utime(paths[1], ns=(paths[1].stat().st_atime_ns, paths[1].stat().st_mtime_ns + 10**9))  # "edited"
    assert decoded_images(few, 48, "bilinear", tmp_path).store != before
    assert len(list((tmp_path / "decoded").glob("*.part*"))) == 0


def test_a_corrupt_image_or_an_unwritable_cache_is_one_clear_error(elpv_images, tmp_path):
    bad = tmp_path / "cell.png"
    bad.write_bytes(b"\x89PNG truncated")
    broken = ImageList(["a"], [0], paths=[bad])
    with pytest.raises(DataError, match="cell.png"):
        decoded_images(broken, 48, "bilinear", tmp_path / "cache")
    assert not list((tmp_path / "cache" / "decoded").glob("*"))  # nothing half-written left behind
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(DataError, match="data.cache_dir: cannot write the decoded-image cache"):
        decoded_images(elpv_images, 48, "bilinear", blocked)


def test_training_from_the_store_is_reproducible_with_workers(tiny_overrides, tmp_path):
    cached = tiny_overrides + ["data.decoded_cache=true", f"data.cache_dir={tmp_path / 'cache'}",
                               "data.num_workers=2", "train.epochs=1", "data.transforms.resize=28"]
    first = train(load_config(None, cached), progress=False)
    again = train(load_config(None, cached), progress=False)
    assert len(list((tmp_path / "cache" / "decoded").glob("*.index.npy"))) == 2  # train and val
    assert first.test["top1"] == again.test["top1"] and first.test["ece"] == again.test["ece"]
    assert history(first.run_dir) == history(again.run_dir)
