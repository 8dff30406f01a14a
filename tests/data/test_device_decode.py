"""data.jpeg_decode: device, run here on the CPU (decode_jpeg's CPU path; nvJPEG takes the same calls on a
GPU): the device path cuts the PIL pipeline's crops, within the decoders' and resizers' rounding, on real
ELPV cells saved as JPEG; PNGs, boxes and corrupt files; reproducible, resumable training; clear refusals."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.device_decode import EncodedImageDataset, Planner, collate_encoded
from fgvc.data.images import ImageList
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import ConfigError, DataError
from fgvc.train.run import resume, train

from builders import KillAtEpoch
from builders import history_rows as history

ELPV = ["data.name=elpv", "data.transforms.resize=146", "data.transforms.crop=128",
        "model.name=tf_efficientnet_lite0", "data.jpeg_decode=device"]


@pytest.fixture(scope="module")
def elpv_jpegs(tmp_path_factory):
    """12 ELPV cells as JPEG files, every other one stretched to 360 x 300 (not square)."""
    cells = load_data(load_config(None, ["data.name=elpv"]).data).train.subset(range(12))
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for index in range(len(cells)):
        image = cells.load(index)
        if index % 2:
            image = image.resize((360, 300))
        paths.append(folder / f"cell_{index}.jpg")
        image.save(paths[-1], quality=90)
    return cells, ImageList(cells.class_names, cells.labels, paths=paths)


def both_paths(images: ImageList, overrides: list[str], train: bool, epoch: int = 1):
    """The PIL workers' uint8 batch and the device path's batch for the same seed and epoch."""
    cfg = load_config(None, ELPV + overrides)
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    pil = SeededImageDataset(images, build_transform(cfg.data.transforms, norm, train=train, uint8=True), 7)
    device = EncodedImageDataset(images, Planner(cfg.data.transforms, norm.interpolation, train), 7)
    expected = torch.stack([pil[(epoch, i)][0] for i in range(len(images))])
    batch, labels = collate_encoded([device[(epoch, i)] for i in range(len(images))])
    assert labels.tolist() == images.labels.tolist()
    return expected, batch.decode(torch.device("cpu"))


AUGMENTED = ["data.transforms.vflip=0.5", "data.transforms.rot90=0.75", "data.transforms.interpolation=random"]


@pytest.mark.parametrize("train, overrides", [(False, []), (True, []), (True, AUGMENTED)],
                         ids=["eval", "train", "train-d4-random-interpolation"])
def test_the_device_path_cuts_the_crops_of_the_pil_pipeline(elpv_jpegs, train, overrides):
    _, jpegs = elpv_jpegs
    expected, decoded = both_paths(jpegs, overrides, train)
    assert decoded.dtype == torch.uint8 and decoded.shape == expected.shape == (12, 3, 128, 128)
    difference = (expected.int() - decoded.int()).abs()
    assert difference.max() <= 2 and difference.float().mean() < 0.05  # rounding, not geometry


def test_flips_and_turns_really_happen_and_follow_the_epoch(elpv_jpegs):
    _, jpegs = elpv_jpegs
    _, plain = both_paths(jpegs, [], True)
    _, turned = both_paths(jpegs, AUGMENTED, True)
    _, next_epoch = both_paths(jpegs, AUGMENTED, True, epoch=2)
    changed = [not torch.equal(a, b) for a, b in zip(plain, turned)]
    assert 3 <= sum(changed) < 12  # rot90 0.75 / vflip 0.5 move most images, not all
    assert not torch.equal(turned, next_epoch)
    _, again = both_paths(jpegs, AUGMENTED, True)
    assert torch.equal(turned, again)


def test_pngs_and_boxes_take_the_same_device_path(elpv_jpegs):
    cells, jpegs = elpv_jpegs
    boxes = [[10.4, 20.0, 200.0, 180.6] if i % 3 else [250.0, 0.0, 120.0, 120.0] for i in range(len(cells))]
    for files in (cells, jpegs):  # PNGs are decoded by PIL in the workers; JPEGs on the device
        boxed = ImageList(files.class_names, files.labels, paths=files.paths, boxes=boxes)
        for is_train in (False, True):
            expected, decoded = both_paths(boxed, [], is_train)
            assert (expected.int() - decoded.int()).abs().max() <= 2


def test_grey_and_cmyk_jpegs_are_read_as_pil_reads_them(elpv_jpegs, tmp_path):
    cells, _ = elpv_jpegs
    paths = []
    for index, mode in enumerate(("L", "CMYK", "L", "CMYK")):
        paths.append(tmp_path / f"{mode}_{index}.jpg")
        cells.load(index).convert(mode).save(paths[-1], quality=90)
    images = ImageList(cells.class_names, cells.labels[:4], paths=paths)
    cfg = load_config(None, ELPV)
    dataset = EncodedImageDataset(images, Planner(cfg.data.transforms, "bilinear", False), 0)
    assert [dataset[(0, i)][0].jpeg for i in range(4)] == [True, False, True, False]  # CMYK: PIL in the worker
    for is_train in (False, True):
        expected, decoded = both_paths(images, [], is_train)
        assert (expected.int() - decoded.int()).abs().max() <= 2


def test_a_corrupt_jpeg_is_named(elpv_jpegs, tmp_path):
    _, jpegs = elpv_jpegs
    data = jpegs.paths[0].read_bytes()
    cfg = load_config(None, ELPV)
    for name, content in (("broken_body.jpg", data[: len(data) // 2]), ("broken_header.jpg", data[:300])):
        broken = tmp_path / name
        broken.write_bytes(content)
        images = ImageList(jpegs.class_names, jpegs.labels[:2], paths=[jpegs.paths[1], broken])
        dataset = EncodedImageDataset(images, Planner(cfg.data.transforms, "bilinear", True), 0)
        with pytest.raises(DataError, match=rf"cannot read image .*{name}"):
            samples = [dataset[(0, 0)], dataset[(0, 1)]]  # a header PIL cannot read fails in the worker
            assert samples[1][0].jpeg  # a body that cannot be decoded fails on the device
            collate_encoded(samples)[0].decode(torch.device("cpu"))


@pytest.mark.parametrize("overrides, named", [
    (["data.transforms.auto_augment=randaugment"], "data.transforms.auto_augment"),
    (["data.uint8_batches=false"], "data.uint8_batches: false"),
    (["data.decoded_cache=true"], "data.decoded_cache"),
    (["train.engine=probe"], "train.engine: probe"),
    (["train.engine=pipeline", "model.name=vit_tiny_patch16_224"], "data.jpeg_decode: device"),
])
def test_what_the_device_path_cannot_run_is_refused_by_name(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, ELPV + overrides)


@pytest.fixture
def colour_jpegs(colour_data, tmp_path):
    """The colour fixture saved as JPEG files (same folders)."""
    root = tmp_path / "jpeg"
    for png in Path(colour_data).rglob("*.png"):
        target = root / png.relative_to(colour_data).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(png).save(target, quality=95)
    return root


def test_training_with_device_decoding_is_reproducible_and_resumes_exactly(colour_jpegs, tiny_overrides):
    sets = [s for s in tiny_overrides if not s.startswith(("data.root", "data.test_root"))] + [
        f"data.root={colour_jpegs / 'train'}", f"data.test_root={colour_jpegs / 'test'}", "data.jpeg_decode=device",
        "data.num_workers=2", "data.transforms.hflip=0.5", "data.transforms.re_prob=0.5", "train.epochs=2"]
    whole = train(load_config(None, sets + ["output.name=whole"]), progress=False)
    again = train(load_config(None, sets + ["output.name=again"]), progress=False)
    assert history(whole.run_dir) == history(again.run_dir)
    assert whole.test["top1"] == again.test["top1"] > 0.5  # it learns the colours
    killed = load_config(None, sets + ["output.name=killed"])
    with pytest.raises(RuntimeError, match="killed"):
        train(killed, callbacks=[KillAtEpoch(1)], progress=False)
    resumed = resume(killed.run_dir, progress=False)
    assert history(resumed.run_dir) == history(whole.run_dir)
    assert resumed.test["confusion_matrix"] == whole.test["confusion_matrix"]
