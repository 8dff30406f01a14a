"""High-bit-depth images are scaled, not saturated; `data verify` notes odd but readable files,
counts unlabelled images and reports label conflicts with file names."""

import io
import struct
import zlib

import numpy as np
import pytest
from builders import make_image_folder, make_kaggle_csv, write_image
from PIL import Image
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import CsvConfig, DataConfig
from fgvc.data import load_data
from fgvc.data.images import decode_image
from fgvc.data.verify import verify_splits

runner = CliRunner()
RAMP = np.linspace(0, 65535, 64 * 64).reshape(64, 64)


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (PIL cannot write one)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_saturated(fmt):
    image = np.asarray(decode_image(encode(RAMP.astype(np.uint16), fmt), f"ramp.{fmt.lower()}"))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    expected = np.round(RAMP / 257)
    assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
    assert (image == 255).mean() < 0.01  # PIL's own convert() made 99 % of them 255


def test_16_bit_rgb_png_keeps_its_channels():
    pixels = np.stack([RAMP, RAMP / 2, RAMP / 4], -1).astype(np.uint16)
    image = np.asarray(decode_image(png_16bit_rgb(pixels), "rgb16.png"))
    assert np.abs(image.astype(int) - (pixels >> 8)).max() <= 1


def test_32_bit_integer_and_float_tiffs():
    wide = (np.linspace(0, 2 ** 20, 64 * 64).reshape(64, 64)).astype(np.int32)  # beyond 16 bit: own range
    image = np.asarray(decode_image(encode(wide, "TIFF"), "wide.tif"))[..., 0].astype(int)
    assert image.min() == 0 and image.max() == 255 and abs(image.mean() - 127.5) < 2
    in16 = RAMP.astype(np.int32)  # 16-bit values in a 32-bit file: scaled as 16 bit
    assert np.abs(np.asarray(decode_image(encode(in16, "TIFF"), "i16.tif"))[..., 0] - np.round(RAMP / 257)).max() <= 1
    unit = (RAMP / 65535).astype(np.float32)
    as_float = np.asarray(decode_image(encode(unit, "TIFF"), "unit.tif"))[..., 0].astype(int)
    assert np.abs(as_float - np.round(unit * 255)).max() <= 1


def test_verify_notes_odd_files_without_failing(tmp_path):
    make_image_folder(tmp_path / "train", per_class=3)
    odd = tmp_path / "train" / "cat"
    (odd / "deep.png").write_bytes(encode(RAMP.astype(np.uint16), "PNG"))
    Image.new("CMYK", (16, 16), (10, 20, 30, 0)).save(odd / "print.jpg")
    write_image(odd / "really_png.jpg", seed=9, fmt="PNG")
    Image.new("L", (16, 16), 128).save(odd / "grey.png")
    palette = Image.new("P", (16, 16), 0)
    palette.info["transparency"] = 0
    palette.save(odd / "palette.png", transparency=0)
    splits = load_data(DataConfig(name="image_folder", root=tmp_path / "train", val_fraction=0))
    report = verify_splits(splits, workers=2)
    notes = {}
    for note in report.notes:
        notes.setdefault(note.image.split("/")[-1], []).append(note.note)
    assert any("high bit depth" in n for n in notes["deep.png"])
    assert any("CMYK" in n for n in notes["print.jpg"])
    assert "PNG content named .jpg" in notes["really_png.jpg"]
    assert any("grayscale" in n for n in notes["grey.png"])
    assert any("palette with transparency" in n for n in notes["palette.png"])
    assert not any(name.startswith("cat_") for name in notes)  # ordinary files have no notes
    assert report.ok and not report.unreadable
    (tmp_path / "exp.yaml").write_text(f"data: {{name: image_folder, root: {tmp_path / 'train'}, val_fraction: 0}}\n")
    cli = runner.invoke(app, ["data", "verify", str(tmp_path / "exp.yaml"), "--strict", "--out", str(tmp_path / "r.json")])
    assert cli.exit_code == 0, cli.output
    assert "odd but readable" in cli.output and "PNG content named .jpg: 1 image (really_png.jpg)" in cli.output


def test_verify_counts_an_unlabelled_kaggle_test_folder(tmp_path):
    make_kaggle_csv(tmp_path, test_images=4)
    cfg = DataConfig(name="kaggle_csv", root=tmp_path, csv=CsvConfig(label_column="breed", test_dir="test"),
                     val_fraction=0)
    report = verify_splits(load_data(cfg), workers=2)
    assert report.totals["unlabelled"] == 4 and report.totals["train"] == 9
    (tmp_path / "exp.yaml").write_text(
        f"data: {{name: kaggle_csv, root: {tmp_path}, val_fraction: 0, csv: {{label_column: breed, test_dir: test}}}}\n")
    cli = runner.invoke(app, ["data", "verify", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "r.json")],
                        env={"COLUMNS": "200"})
    total = next(line for line in cli.output.splitlines() if "total" in line)
    assert [cell.strip() for cell in total.strip("│ ").split("│")] == ["total", "9", "4"], cli.output


def test_the_same_image_under_two_labels_is_a_conflict_with_file_names(tmp_path):
    make_image_folder(tmp_path / "train", per_class=3)
    source = tmp_path / "train" / "cat" / "cat_0.png"
    twin = tmp_path / "train" / "dog" / "copy_of_cat.png"
    twin.write_bytes(source.read_bytes())
    report = verify_splits(load_data(DataConfig(name="image_folder", root=tmp_path / "train", val_fraction=0)))
    assert len(report.conflicts) == 1 and not report.ok
    conflict = report.conflicts[0]
    assert sorted(conflict.labels) == ["cat", "dog"]
    assert {image for _, image in conflict.images} == {str(source), str(twin)}
    (tmp_path / "exp.yaml").write_text(f"data: {{name: image_folder, root: {tmp_path / 'train'}, val_fraction: 0}}\n")
    cli = runner.invoke(app, ["data", "verify", str(tmp_path / "exp.yaml"), "--strict", "--out", str(tmp_path / "r.json")],
                        env={"COLUMNS": "400"})
    assert cli.exit_code == 1
    assert "label conflicts" in cli.output and "copy_of_cat.png (dog)" in cli.output and "cat_0.png (cat)" in cli.output
