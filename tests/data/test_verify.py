import json
import shutil

import numpy as np
from builders import make_cub, make_image_folder, write_image
from PIL import Image
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import DataConfig
from fgvc.data import load_data
from fgvc.data.verify import verify_splits

runner = CliRunner()


def _corrupt_copy(tmp_path):
    make_image_folder(tmp_path / "train", per_class=5)
    victim = tmp_path / "train" / "dog" / "dog_2.png"
    write_image(victim.with_suffix(".jpg"), seed=1, size=(64, 64), fmt="JPEG")
    data = victim.with_suffix(".jpg").read_bytes()
    victim.with_suffix(".jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    victim.unlink()
    (tmp_path / "train" / "fox" / "not_an_image.png").write_text("hello")
    return victim.with_suffix(".jpg")


def test_verify_lists_truncated_and_unreadable_files(tmp_path):
    truncated = _corrupt_copy(tmp_path)
    splits = load_data(DataConfig(name="image_folder", root=tmp_path / "train", val_fraction=0))
    report = verify_splits(splits, workers=2)
    bad = {item.image: item.error for item in report.unreadable}
    assert str(truncated) in bad and "truncated" in bad[str(truncated)]
    assert str(tmp_path / "train" / "fox" / "not_an_image.png") in bad
    assert report.counts["train"] == [5, 5, 6]  # listed, never dropped
    assert not report.ok


def test_verify_reports_duplicate_across_splits_and_sizes(tmp_path):
    make_cub(tmp_path, classes=2, per_class=4)
    base = tmp_path / "CUB_200_2011" / "images"
    train_file = base / "001.Bird_number_1" / "Bird_number_1_0000_1.jpg"
    test_file = base / "001.Bird_number_1" / "Bird_number_1_0003_4.jpg"  # is_training_image = 0
    shutil.copy(train_file, test_file)
    splits = load_data(DataConfig(name="cub200", root=tmp_path, val_fraction=0))
    report = verify_splits(splits)
    assert len(report.leaks) == 1
    assert sorted(report.leaks[0].images) == [("test", str(test_file)), ("train", str(train_file))]
    assert report.counts == {"train": [3, 3], "test": [1, 1]}
    assert report.sizes["train"]["width_max"] == 40 and report.sizes["train"]["height_min"] == 32
    assert report.unreadable == []


def test_verify_in_memory_duplicates(tmp_path):
    from fgvc.data.images import ImageList
    from fgvc.data.splits import DataSplits

    pixels = np.random.default_rng(0).integers(0, 255, (4, 8, 8), dtype=np.uint8)
    pixels[3] = pixels[0]
    images = ImageList(["a", "b"], np.array([0, 1, 0, 1]), pixels=pixels, name="mem")
    report = verify_splits(DataSplits(train=images.subset([0, 1]), val=None, test=images.subset([2, 3], "memtest")))
    assert len(report.leaks) == 1 and report.leaks[0].splits == ["test", "train"]


def _config(tmp_path, data_root, extra=""):
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"data:\n  name: image_folder\n  root: {data_root}\n  val_fraction: 0\n  num_workers: 1\n"
        f"  transforms: {{resize: 36, crop: 32}}\noutput:\n  dir: {tmp_path / 'runs'}\n{extra}"
    )
    return path


def test_cli_verify_strict_fails_on_corrupt_file_and_writes_json(tmp_path):
    _corrupt_copy(tmp_path)
    config = _config(tmp_path, tmp_path / "train")
    result = runner.invoke(app, ["data", "verify", str(config), "--strict"])
    assert result.exit_code == 1, result.output
    assert "2 unreadable images" in result.output
    report = json.loads((tmp_path / "runs" / "exp" / "data_verify.json").read_text())
    assert report["ok"] is False and len(report["unreadable"]) == 2
    relaxed = runner.invoke(app, ["data", "verify", str(config)])
    assert relaxed.exit_code == 0


def test_cli_data_show_writes_png_grid(tmp_path):
    make_image_folder(tmp_path / "train", per_class=4)
    config = _config(tmp_path, tmp_path / "train")
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["data", "show", str(config), "--out", str(out), "--count", "8"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        assert grid.size == (1760, 240)  # 8 columns x 1 row at 2.2 x 2.4 inches, 100 dpi


def test_unreadable_files_are_named_with_a_reason_not_a_python_repr(tmp_path):
    import pytest

    from fgvc.data.images import decode_image
    from fgvc.errors import DataError

    make_image_folder(tmp_path / "train", per_class=2)
    (tmp_path / "train" / "cat" / "empty.jpg").write_bytes(b"")
    (tmp_path / "train" / "dog" / "page.jpg").write_text("<!DOCTYPE html>\n<html><body>Forbidden</body></html>")
    (tmp_path / "train" / "fox" / "notes.png").write_text("hello")
    splits = load_data(DataConfig(name="image_folder", root=tmp_path / "train", val_fraction=0))
    bad = {item.image.rsplit("/", 1)[1]: item.error for item in verify_splits(splits, workers=1).unreadable}
    assert bad == {"empty.jpg": "empty file (0 bytes)",
                   "page.jpg": "an HTML page, not an image (51 bytes; a failed download?)",
                   "notes.png": "a text file, not an image (5 bytes)"}
    with pytest.raises(DataError) as error:  # what a training batch meets
        decode_image(b"", "cat/empty.jpg")
    assert str(error.value).startswith("cannot read image cat/empty.jpg: empty file (0 bytes). Run `fgvc data verify")
    assert " object at 0x" not in str(error.value)
