"""Inputs stay where they belong (issue 30, section 3): a run name, CSV ids, folder links, duplicate ids,
decompression bombs and tiny classes, each from real files, through the real commands where the issue
ran them (`fgvc train` in a fresh process, `fgvc data verify`)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import make_cub, make_kaggle_csv, write_image
from PIL import Image
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import DataConfig, load_config
from fgvc.data import load_data
from fgvc.data.sources.synthetic import load_synthetic
from fgvc.errors import ConfigError, DataError

runner = CliRunner()
FGVC = str(Path(sys.executable).parent / "fgvc")


def run_fgvc(*args, cwd):
    """`fgvc ARGS` in a fresh process, as from a shell (a wide terminal: no line is wrapped)."""
    return subprocess.run([FGVC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "1000", "OMP_NUM_THREADS": "1"})


def error_lines(stderr: str) -> list[str]:
    """What the CLI printed as errors; a traceback would show as more than these."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def tiny_folder(root: Path, classes=("blue", "green", "red"), per_class: int = 10) -> Path:
    for c, name in enumerate(classes):
        for k in range(per_class):
            write_image(root / name / f"{name}_{k}.png", seed=100 * c + k, size=(16, 16))
    return root


def write_config(path: Path, data: str, runs: Path, workers: int = 0) -> Path:
    path.write_text(f"""
data: {{{data}, num_workers: {workers}, transforms: {{resize: 16, crop: 16}}}}
model: {{name: resnet10t, pretrained: false}}
train: {{epochs: 1, batch_size: 8}}
output: {{dir: {runs}}}
""")
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A real decompression bomb: a 30000 x 30000 1-bit PNG, about 100 KB on disk, 900 M pixels."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (30000, 30000)).save(path)
    return path


# 1. output.name ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", "/tmp/x", "a\\b"])
def test_a_run_name_that_is_not_one_folder_is_a_config_error_naming_it(tmp_path, name):
    with pytest.raises(ConfigError, match=r"output\.name: not a single folder name") as info:
        load_config(None, [f"output.name={json.dumps(name)}"])  # YAML reads a JSON string
    assert repr(name) in str(info.value)


def test_train_with_a_climbing_run_name_writes_nothing_outside_output_dir(tmp_path, colour_data):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    config = write_config(work / "exp.yaml", f"name: image_folder, root: {colour_data / 'train'}, val_fraction: 0.25",
                          work / "runs")  # a data set that trains: before, the run went to a/x
    config.write_text(config.read_text().replace(f"output: {{dir: {work / 'runs'}}}",
                                                 f"output: {{dir: {work / 'runs'}, name: ../../x}}"))
    result = runner.invoke(app, ["train", str(config), "--no-progress"])
    assert result.exit_code == 2
    assert "output.name: not a single folder name" in result.output and "(got '../../x')" in result.output
    assert not (tmp_path / "a" / "x").exists() and not (work / "runs").exists()


# 2. ids that leave data.root ---------------------------------------------------------------------
def test_a_csv_id_that_leaves_the_root_is_refused_naming_the_file_and_line(tmp_path):
    root = make_kaggle_csv(tmp_path / "data")
    write_image(tmp_path / "outside" / "secret.jpg", seed=1)  # a real image: before, it was read silently
    with (root / "labels.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["../../outside/secret.jpg", "pug"])
    cfg = DataConfig(name="kaggle_csv", root=root, val_fraction=0, csv={"label_column": "breed"})
    with pytest.raises(DataError) as info:
        load_data(cfg)
    assert str(info.value) == (
        f"{root / 'labels.csv'} line 11: id '../../outside/secret.jpg' leads outside the data folder {root}; "
        "listed files must lie below it (no absolute paths, no ..)")
    config = write_config(tmp_path / "exp.yaml", f"name: kaggle_csv, root: {root}, csv: {{label_column: breed}}",
                          tmp_path / "runs")
    result = runner.invoke(app, ["data", "verify", str(config)], env={"COLUMNS": "1000"})
    assert result.exit_code == 2 and result.output.count("leads outside the data folder") == 1, result.output


def test_other_listing_files_are_held_to_their_root_too(tmp_path):
    cub = make_cub(tmp_path / "cub", classes=2, per_class=2)
    write_image(tmp_path / "outside.jpg", seed=2)
    lines = (cub / "images.txt").read_text().splitlines()
    lines[0] = "1 ../../../outside.jpg"
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"images\.txt: image 1 \('\.\./\.\./\.\./outside\.jpg'\) leads outside"):
        load_data(DataConfig(name="cub200", root=tmp_path / "cub", val_fraction=0))

    synthetic = tmp_path / "synthetic"
    write_image(synthetic / "red" / "0.png", seed=3)
    (synthetic / "manifest.csv").write_text("file,label\nred/0.png,red\n../outside.jpg,red\n")
    with pytest.raises(DataError, match=r"manifest\.csv line 3: file '\.\./outside\.jpg' leads outside"):
        load_synthetic(synthetic, ["red"])


# 3. folder links ---------------------------------------------------------------------------------
def test_a_folder_link_loop_is_not_followed_and_verify_names_it(tmp_path):
    root = tiny_folder(tmp_path / "data")
    (root / "red" / "up").symlink_to("..")  # the loop that grew 30 images to 990
    splits = load_data(DataConfig(name="image_folder", root=root, val_fraction=0))
    assert len(splits.train) == 30 and splits.train.class_counts().tolist() == [10, 10, 10]
    assert splits.skipped_links == [f"{root / 'red' / 'up'} -> .."]
    config = write_config(tmp_path / "exp.yaml", f"name: image_folder, root: {root}", tmp_path / "runs")
    result = runner.invoke(app, ["data", "verify", str(config)], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    said = squeezed(result.output)  # rich wraps long paths wherever the terminal is narrow
    assert squeezed("1 folder links not followed") in said and squeezed(f"{root / 'red' / 'up'} -> ..") in said


def test_follow_links_follows_a_link_out_of_the_tree_but_never_back_in(tmp_path):
    root = tiny_folder(tmp_path / "data", per_class=2)
    elsewhere = tiny_folder(tmp_path / "elsewhere", classes=("more",), per_class=3) / "more"
    (root / "red" / "more").symlink_to(elsewhere)  # leads out: followed when asked
    (elsewhere / "again").symlink_to(root)  # and from there back into the tree: never
    default = load_data(DataConfig(name="image_folder", root=root, val_fraction=0))
    assert len(default.train) == 6 and default.skipped_links == [f"{root / 'red' / 'more'} -> {elsewhere}"]
    followed = load_data(DataConfig(name="image_folder", root=root, val_fraction=0, follow_links=True))
    assert followed.train.class_counts().tolist() == [2, 2, 5]
    assert followed.skipped_links == [f"{root / 'red' / 'more' / 'again'} -> {root}"]


# 4. duplicate ids with conflicting labels --------------------------------------------------------
def test_train_refuses_csv_ids_listed_with_two_labels_unless_allowed(tmp_path):
    root = make_kaggle_csv(tmp_path / "data")
    first_id = (root / "labels.csv").read_text().splitlines()[1].split(",")[0]
    with (root / "labels.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow([first_id, "pug"])  # line 11: the beagle on line 2, now also a pug
    config = write_config(tmp_path / "exp.yaml", f"name: kaggle_csv, root: {root}, csv: {{label_column: breed}}, "
                                                 "val_fraction: 0", tmp_path / "runs")
    result = run_fgvc("train", config, "--no-progress", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [(
        f"error: {root / 'labels.csv'}: 1 id listed with different labels: '{first_id}' (beagle on line 2, "
        "pug on line 11); keep one label per id, or set data.allow_duplicate_ids: true to train on every row "
        "as listed")]
    assert not (tmp_path / "runs" / "exp" / "run.json").exists()  # no run claimed (verify wrote its report there)  # refused before a run folder is claimed

    cfg = load_config(config, ["data.allow_duplicate_ids=true"])  # accepted knowingly
    assert len(load_data(cfg.data).train) == 10
    verify = runner.invoke(app, ["data", "verify", str(config), "--set", f"output.dir={tmp_path / 'runs'}"],
                           env={"COLUMNS": "1000"})
    assert verify.exit_code == 0 and "1 images appear under different labels" in verify.output, verify.output
    assert "(beagle)" in verify.output and "(pug)" in verify.output


# 5. decompression bombs --------------------------------------------------------------------------
def bomb_line(path) -> str:
    return (f"cannot read image {path}: 30000 x 30000 pixels, over PIL's limit of 178,956,970 pixels (a possible "
            "decompression bomb); shrink or remove it")


def test_a_decompression_bomb_is_one_line_in_verify_and_in_train(tmp_path, bomb):
    root = tiny_folder(tmp_path / "data", per_class=4)
    (root / "red" / "bomb.png").write_bytes(bomb.read_bytes())
    config = write_config(tmp_path / "exp.yaml", f"name: image_folder, root: {root}, val_fraction: 0",
                          tmp_path / "runs", workers=2)  # raised in a DataLoader worker, as by default
    verify = runner.invoke(app, ["data", "verify", str(config)], env={"COLUMNS": "1000"})
    assert verify.exit_code == 0, verify.output
    reason = bomb_line(root / 'red' / 'bomb.png').split(".png: ", 1)[1]  # verify names the file once, then why
    assert squeezed(f"{root / 'red' / 'bomb.png'}: {reason}") in squeezed(verify.output)
    result = run_fgvc("train", config, "--no-progress", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [  # found before training starts
        f"error: 1 unreadable image (train 1): {root / 'red' / 'bomb.png'}: {reason}. Replace or remove it, or set "
        "data.skip_unreadable: true to leave them out; `fgvc data verify CONFIG` lists every one"]
    assert not (tmp_path / "runs" / "exp" / "run.json").exists()  # no run claimed (verify wrote its report there)


def test_the_app_names_an_uploaded_bomb_and_its_size(tmp_path, bomb, colour_data):
    from fgvc.app.answers import Demo
    from fgvc.train.run import train

    cfg = load_config(None, [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", "data.val_fraction=0", "data.num_workers=0",
        "data.transforms.resize=16", "data.transforms.crop=16", "model.name=resnet10t", "model.pretrained=false",
        "train.epochs=1", "train.batch_size=16", f"output.dir={tmp_path}", "output.name=run"])
    run_dir = train(cfg, progress=False, evaluate=()).run_dir
    good = sorted((colour_data / "test" / "red").iterdir())[0]
    _, answers, problems = Demo(run_dir).answer([bomb, good])
    assert problems == [("bomb.png: 30000 x 30000 pixels, over PIL's limit of 178,956,970 pixels (a possible "
                         "decompression bomb), skipped")]
    assert [a.name for a in answers] == [good.name]


# 6. a class too small to split -------------------------------------------------------------------
def test_a_class_with_one_image_is_named(tmp_path):
    root = tiny_folder(tmp_path / "data", per_class=4)
    for extra in sorted((root / "red").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="image_folder", root=root, val_fraction=0.25))
    assert str(info.value) == ("cannot hold out a stratified 25% split: class 'red' has 1 image, fewer than 2; "
                               "lower data.val_fraction to 0, or add images to the class")
    with pytest.raises(DataError, match=r"3-fold split: class 'red' has 1 image, fewer than 3; use fewer folds"):
        load_data(DataConfig(name="image_folder", root=root, folds=3, fold=0))


def squeezed(text: str) -> str:
    """``text`` without any white space: what was said, however a console wrapped it."""
    return "".join(text.split())
