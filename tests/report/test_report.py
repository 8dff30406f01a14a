import base64
import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.experiments.repeat import repeat
from fgvc.report.html import _wrap
from fgvc.report.plots import plot_learning_curves, reliability_bins
from fgvc.runfolder import RunFolder
from fgvc.train.run import train

runner = CliRunner()


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_run_report_is_self_contained_and_holds_the_metrics(tiny_overrides):
    result = train(load_config(None, tiny_overrides + ["train.epochs=1", "optim.lr=0.5"]), progress=False)
    page = (result.run_dir / "report.html").read_text()
    assert f"{result.test['top1']:.4f}" in page and f"{result.test['f1_macro']:.4f}" in page
    assert "Per-class accuracy" in page and "Most confused pairs" in page and "learning curves" in page
    assert "Per-class precision, recall, F1 (test, worst F1 first)" in page
    import fgvc

    made = result.metrics["provenance"]
    assert made["fgvc"] == fgvc.__version__ and "CPU cores" in made["hardware"]
    assert f"fgvc {fgvc.__version__}" in page and f"trained {made['date']} on {made['hardware']}" in page
    red = result.test["per_class"]["red"]
    assert f"<td>red</td><td>{red['precision']:.4f}</td><td>{red['recall']:.4f}</td><td>{red['f1']:.4f}</td>" \
           f"<td>{red['support']}</td>" in page
    images = _images(page)
    assert len(images) >= 2 and all(img.startswith(b"\x89PNG") for img in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "seed: 42" in page  # the config is in it
    assert "Confusion matrix (test split)" in page and f"Calibration (test split): ECE {result.test['ece']:.4f}" in page
    assert len(images) >= 4  # curves, confusion matrix, reliability diagram, misclassified images
    folder = RunFolder(result.run_dir)
    rows = folder.predictions("test")
    *_, count, ece = reliability_bins([r.confidence for r in rows], [r.right for r in rows])
    assert int(count.sum()) == len(rows) == result.test["n"]
    assert ece == pytest.approx(result.test["ece"], abs=1e-3)  # the diagram's bins are the metric's
    with Image.open(folder.reliability_diagram) as diagram, Image.open(folder.learning_curves) as curves:
        assert diagram.size[1] > 300 and curves.size == (1000, 700)  # 2 x 2 panels: loss, top-1, F1, lr


def test_report_captions_wrap_whole_class_names():
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name = "Black_footed_Albatross_with_a_very_long_name"
    lines = _wrap(draw, name, 80)
    assert len(lines) > 1 and all(draw.textlength(line) <= 80 for line in lines)
    assert "".join(lines) == name  # broken at underscores, nothing cut


def test_learning_curves_use_whole_epochs_and_skip_what_was_not_logged(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,seconds,val/loss,val/top1\n0,1,0.9,0.5\n1,1,0.8,0.6\n2,1,0.7,0.7\n")
    plot_learning_curves(history, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as picture:
        assert picture.size == (1000, 350)  # one row: loss and top-1, no empty F1 / lr panels


def test_group_report_and_cli(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    summary = repeat(cfg, [1, 2], tmp_path / "group", log=lambda _: None)
    page = (tmp_path / "group" / "report.html").read_text()
    mean = summary["metrics"]["test"]["top1"]["mean"]
    assert f"{mean:.4f}" in page and "95% CI" in page
    assert "seed-1/report.html" in page and (tmp_path / "group" / "seed-1" / "report.html").is_file()
    assert "test: each member and the mean with its CI" in page and "Learning curves of the members" in page
    assert (tmp_path / "group" / "test_members.png").is_file() and (tmp_path / "group" / "curves.png").is_file()
    card = (tmp_path / "group" / "seed-2" / "README.md").read_text()
    top1 = summary["metrics"]["test"]["top1"]
    assert "This run is one of 2 seeds of the same recipe; over all of them (test, mean and 95 % CI):" in card
    assert f"- top1: {top1['mean']:.4f} [{top1['ci_low']:.4f}, {top1['ci_high']:.4f}]" in card
    (tmp_path / "group" / "report.html").unlink()
    result = runner.invoke(app, ["report", str(tmp_path / "group")])
    assert result.exit_code == 0 and (tmp_path / "group" / "report.html").is_file()
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "neither metrics.json" in bad.output
    assert json.loads((tmp_path / "group" / "summary.json").read_text())["kind"] == "repeat"
