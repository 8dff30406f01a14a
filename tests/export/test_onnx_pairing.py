"""predict --engine onnx runs an exported file only in place of the model it was exported from: a file of
another run (other classes, other input size) is one line, and no CSV is written."""

import shutil

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.export.run_export import export_run
from fgvc.train.run import train

runner = CliRunner()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, colour_data):
    """3-class runs at 24 and 32 px and a 2-class run at 32 px, each exported to ONNX."""
    base = tmp_path_factory.mktemp("pairing")
    two_classes = base / "two"
    for name in ("blue", "red"):
        shutil.copytree(colour_data / "train" / name, two_classes / name)
    runs = {}
    for key, root, size in (("three", colour_data / "train", 24), ("three32", colour_data / "train", 32),
                            ("two", two_classes, 32)):
        cfg = load_config(None, [
            "data.name=image_folder", f"data.root={root}", "data.val_fraction=0.25", "data.num_workers=0",
            f"data.transforms.resize={size}", f"data.transforms.crop={size}", "model.name=resnet10t",
            "model.pretrained=false", "train.epochs=1", "train.batch_size=8", f"output.dir={base / 'runs'}",
            f"output.name={key}"])
        runs[key] = train(cfg, progress=False).run_dir
        export_run(runs[key], "onnx", log=lambda _: None)
    return runs


def test_an_onnx_file_of_another_run_is_refused_before_any_csv(two_runs, colour_data, tmp_path):
    images = colour_data / "test" / "red"
    for run, other, differs in (("three", "two", "class_names"), ("two", "three", "class_names"),
                                ("three", "three32", "input_size")):
        out = tmp_path / f"{run}-with-{other}.csv"
        result = runner.invoke(app, ["predict", str(two_runs[run]), str(images), "--out", str(out),
                                     "--model", str(two_runs[other] / "export" / "model.onnx")])
        assert result.exit_code == 2, result.output
        assert f"does not fit the run {two_runs[run]}: its {differs} is" in result.output
        assert "Traceback" not in result.output and not out.exists()
    # a file without fgvc's metadata is checked by its graph's own shapes (here: the input size)
    import onnx

    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(two_runs["two"] / "export" / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    out = tmp_path / "bare.csv"
    result = runner.invoke(app, ["predict", str(two_runs["three"]), str(images), "--out", str(out), "--model", str(bare)])
    assert result.exit_code == 2 and "its num_classes is 2, the run's is 3" in result.output and not out.exists()


def test_model_implies_onnx_and_the_right_pairing_still_runs(two_runs, colour_data, tmp_path):
    images = colour_data / "test" / "red"
    out = tmp_path / "right.csv"
    onnx_file = str(two_runs["two"] / "export" / "model.onnx")
    result = runner.invoke(app, ["predict", str(two_runs["two"]), str(images), "--out", str(out), "--model", onnx_file])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().strip().splitlines()) == 1 + 4  # header + the 4 red test images
    result = runner.invoke(app, ["predict", str(two_runs["two"]), str(images), "--out", str(out),
                                 "--engine", "torch", "--model", onnx_file])
    assert result.exit_code == 2 and "--engine torch does not run" in result.output
    result = runner.invoke(app, ["predict", str(two_runs["two"]), str(images), "--out",
                                 str(tmp_path / "missing" / "sub.csv")])
    assert result.exit_code == 2 and "folder" in result.output and "does not exist" in result.output


def test_predict_says_what_it_skipped_and_keeps_repeated_ids_apart(two_runs, colour_data, tmp_path):
    """A folder's sub-folders and other files are named, not silently dropped; two images with one id
    are warned about, and --ids name / path keep them apart (Kaggle's classify-leaves wants images/0.jpg)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "x.png").write_bytes((colour_data / "test" / "red" / sorted(
            p.name for p in (colour_data / "test" / "red").iterdir())[0]).read_bytes())
    (a / "nested").mkdir()
    (a / "notes.txt").write_text("not an image")
    out = tmp_path / "sub.csv"
    result = runner.invoke(app, ["predict", str(two_runs["three"]), str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 sub-folder(s) and 1 other file(s) (nested, notes.txt)" in result.output
    assert "1 id(s) name more than one image (x)" in result.output and "--ids name" in result.output
    assert [r.split(",")[0] for r in out.read_text().splitlines()[1:]] == ["x", "x"]
    result = runner.invoke(app, ["predict", str(two_runs["three"]), str(a), str(b), "--out", str(out), "--ids", "path"])
    assert result.exit_code == 0 and "name more than one image" not in result.output
    assert [r.split(",")[0] for r in out.read_text().splitlines()[1:]] == ["a/x.png", "b/x.png"]
