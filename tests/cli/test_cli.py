"""The command line as a user meets it: the real `fgvc` entry point, its help and version, and errors
printed as a clear message (no traceback) with exit status 2."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fgvc.cli import app

runner = CliRunner()
FGVC = str(Path(sys.executable).parent / "fgvc")


def run_fgvc(*args, cwd=None):
    """`fgvc ARGS` in a fresh process, as from a shell (a wide terminal: no line is wrapped)."""
    return subprocess.run([FGVC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "1000"})


def test_train_on_a_config_with_an_unknown_key_says_which_and_trains_nothing(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(f"optim:\n  lrr: 0.1\noutput:\n  dir: {tmp_path / 'runs'}\n")
    result = run_fgvc("train", config, "--no-progress", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    header, problem = result.stderr.splitlines()  # a header, then one line per problem
    assert header == f"error: {config} is invalid:"
    assert problem.startswith("  - unknown key 'optim.lrr' (did you mean 'lr'?); valid keys here: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run folder is claimed


def test_train_on_a_missing_config_is_one_line(tmp_path):
    result = run_fgvc("train", tmp_path / "nowhere.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nowhere.yaml" in lines[0], result.stderr


def test_train_without_config_or_resume():
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "give a CONFIG" in result.output


def test_predict_takes_the_engines_that_export_offers(tmp_path, monkeypatch):
    result = runner.invoke(app, ["predict", str(tmp_path), str(tmp_path), "--engine", "tensorrt"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --engine 'tensorrt': use torch or onnx"
    monkeypatch.setattr("fgvc.export.engines.ENGINES", ("torch",))  # one list of engines, not a copy
    result = runner.invoke(app, ["predict", str(tmp_path), str(tmp_path), "--engine", "onnx"])
    assert result.exit_code == 2 and result.output.strip() == "error: --engine 'onnx': use torch"


def test_version():
    import fgvc

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"fgvc {fgvc.__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("config", "data"):
        assert command in result.output
    data_help = runner.invoke(app, ["data", "--help"]).output
    assert "verify" in data_help and "show" in data_help


def test_flags_show_no_type_in_help_and_options_keep_theirs():
    """An on/off flag takes no value, so its help shows none (Typer would print ``<bool>``)."""
    for command in (["train"], ["export"], ["repeat"]):
        text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
        assert "<bool>" not in text, command
        assert "--help" in text and "<path>" in text
    assert "--no-progress" in runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output


def test_config_errors_are_answered_before_torch_is_imported(tmp_path):
    """A config error that needs no model (unknown key, misspelt data set) is found before torch,
    Lightning and timm are imported: the answer comes in well under a second, not ten."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {name: elvp}\noptim: {lrr: 0.1}\n")
    code = ("import sys; from typer.testing import CliRunner; from fgvc.cli import app\n"
            f"for args in (['train', {str(bad)!r}], ['repeat', {str(bad)!r}], ['sweep', {str(bad)!r}, '--grid', "
            f"'optim.lr=0.1,0.2'], ['summary', {str(bad)!r}]):\n"
            "    result = CliRunner().invoke(app, args)\n"
            "    assert result.exit_code == 2 and \"unknown data set 'elvp'\" in result.output, result.output\n"
            "print(sorted(m for m in ('torch', 'lightning', 'timm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"
