"""Unreadable image files are found before training starts (cached per file), named in one line, or
left out and listed with data.skip_unreadable."""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import fgvc.data.readable as readable
from fgvc.cli import app
from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.data.images import decode_image
from fgvc.errors import DataError
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.runfolder import RunFolder
from fgvc.train.run import train

runner = CliRunner()


def jpeg_bytes(size=(24, 24), seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def spoil(data_root):
    """Four unreadable files: three in train, one in test."""
    red, green = sorted((data_root / "train" / "red").iterdir()), sorted((data_root / "train" / "green").iterdir())
    red[0].write_bytes(b"")
    red[1].write_bytes(jpeg_bytes()[:300])  # truncated JPEG
    green[0].write_text("<html><body>404 Not Found</body></html>")
    test = sorted((data_root / "test" / "blue").iterdir())[0]
    test.write_bytes(red[2].read_bytes()[:60])  # truncated PNG
    return [red[0], red[1], green[0]], test


@pytest.fixture
def spoilt(colour_data, tmp_path, tiny_overrides):
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    bad_train, bad_test = spoil(data)
    overrides = [o.replace(str(colour_data), str(data)) for o in tiny_overrides]
    return overrides + [f"data.cache_dir={tmp_path / 'cache'}", "train.epochs=1"], bad_train, bad_test


def test_train_stops_before_any_work_naming_the_unreadable_files(spoilt):
    overrides, bad_train, bad_test = spoilt
    cfg = load_config(None, overrides)
    with pytest.raises(DataError) as error:
        train(cfg, progress=False)
    message = str(error.value)
    assert message.startswith("4 unreadable images (train 2, val 1, test 1): ")  # val is drawn from train
    assert f"{bad_train[0]}: empty file (0 bytes)" in message
    assert "and 1 more. Replace or remove them, or set data.skip_unreadable: true" in message
    assert "\n" not in message and " object at 0x" not in message
    assert not cfg.run_dir.exists()  # nothing claimed, nothing trained


def test_skip_unreadable_leaves_them_out_with_a_count_and_a_list(spoilt, capsys):
    overrides, bad_train, bad_test = spoilt
    cfg = load_config(None, overrides + ["data.skip_unreadable=true"])
    folder = RunFolder(train(cfg, progress=False).run_dir)
    printed = [line for line in capsys.readouterr().out.splitlines() if "skip_unreadable" in line]
    assert len(printed) == 1 and "left out 4 unreadable images" in printed[0]
    assert printed[0].endswith(f"listed in {folder.unreadable_file}")
    rows = [line.split("\t") for line in folder.unreadable_file.read_text().splitlines()]
    assert rows[0] == ["split", "image", "reason"]
    assert sorted(row[1] for row in rows[1:]) == sorted(map(str, [*bad_train, bad_test]))
    assert [row[2] for row in rows[1:] if row[1] == str(bad_test)] == ["image file is truncated; the file has 60 bytes"]
    assert len(folder.predictions("test")) == 12 - 1
    assert str(bad_test) not in {p.image for p in folder.predictions("test")}
    assert evaluate_split(load_trained(folder.path), "test", write=False)["n"] == 11  # `fgvc eval` leaves it out too


def test_the_check_is_cached_per_file_and_filled_by_data_verify(spoilt, tmp_path, monkeypatch):
    overrides, bad_train, _ = spoilt
    cfg = load_config(None, overrides)
    splits = load_data(cfg.data)
    total = sum(len(images) for _, images in splits.named())
    checked = []
    real = readable.file_problem
    monkeypatch.setattr(readable, "file_problem", lambda path: checked.append(path) or real(path))
    first = readable.unreadable_images(splits, cfg.data.cache_dir)
    assert len(checked) == total and len(first) == 4
    checked.clear()
    assert readable.unreadable_images(splits, cfg.data.cache_dir) == first and checked == []  # all from the cache
    shutil.copy(bad_train[0].with_name(sorted(os.listdir(bad_train[0].parent))[-1]), bad_train[0])  # repaired
    assert len(readable.unreadable_images(splits, cfg.data.cache_dir)) == 3 and checked == [bad_train[0]]
    # data verify decodes every file; training after it checks none again
    config = tmp_path / "exp.yaml"
    config.write_text(load_config(None, overrides + [f"data.cache_dir={tmp_path / 'verified'}"]).to_yaml())
    assert runner.invoke(app, ["data", "verify", str(config)]).exit_code == 0
    checked.clear()
    assert len(readable.unreadable_images(splits, tmp_path / "verified")) == 3 and checked == []


@pytest.mark.parametrize("name, content, reason", [
    ("padded.jpg", jpeg_bytes() + b"\0" * 5000, None),  # bytes after the end marker: readable
    ("big.jpg", jpeg_bytes((300, 300)), None),
    ("png_named.jpg", None, None),
    ("empty.png", b"", "empty file (0 bytes)"),
    ("cut.jpg", jpeg_bytes()[:-2], "image file is truncated"),
    ("cut_more.jpg", jpeg_bytes((300, 300))[:20000], "image file is truncated"),
    ("cut.png", "png[:-30]", "image file is truncated"),
    ("text.png", b"label,file\n", "a text file, not an image (11 bytes)"),
])
def test_what_the_quick_check_refuses_is_what_a_decode_refuses(tmp_path, name, content, reason):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(buffer, "PNG")
    path = tmp_path / name
    path.write_bytes(buffer.getvalue() if content is None else
                     buffer.getvalue()[:-30] if content == "png[:-30]" else content)
    found = readable.file_problem(path)
    if reason is None:
        assert found is None
        decode_image(path.read_bytes(), name)
    else:
        assert found.startswith(reason), found
        with pytest.raises(DataError):
            decode_image(path.read_bytes(), name)


def test_a_k_shot_draw_takes_k_readable_images_per_class(spoilt):
    """data.skip_unreadable with data.limit_per_class: the unreadable files leave before the draw, so every
    class keeps k images however the draw falls (red holds 2 unreadable files)."""
    from fgvc.data import load_data
    from fgvc.data.readable import as_trained

    overrides, bad_train, _ = spoilt
    for seed in range(6):
        cfg = load_config(None, overrides + ["data.skip_unreadable=true", "data.val_fraction=0",
                                             "data.limit_per_class=6", f"data.limit_seed={seed}"])
        train_images = as_trained(load_data(cfg.data), cfg.data).train
        assert np.bincount(train_images.labels).tolist() == [6, 6, 6]
        assert not {str(p) for p in bad_train} & {str(train_images.key(i)) for i in range(len(train_images))}


def test_a_k_shot_run_lists_the_unreadable_files_left_out_before_the_draw(spoilt, capsys):
    """The training files load_data leaves out before a k-shot draw are counted and listed like the rest."""
    overrides, bad_train, bad_test = spoilt
    cfg = load_config(None, overrides + ["data.skip_unreadable=true", "data.val_fraction=0", "data.limit_per_class=6"])
    folder = RunFolder(train(cfg, progress=False).run_dir)
    printed = [line for line in capsys.readouterr().out.splitlines() if "skip_unreadable" in line]
    assert len(printed) == 1 and f"left out {len(bad_train) + 1} unreadable images (train {len(bad_train)}, test 1)" in printed[0]
    rows = [line.split("\t") for line in folder.unreadable_file.read_text().splitlines()[1:]]
    assert sorted(row[1] for row in rows) == sorted(map(str, [*bad_train, bad_test]))
    assert {row[0] for row in rows} == {"train", "test"}
