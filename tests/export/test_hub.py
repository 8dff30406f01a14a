"""Model card and timm hub layout: every run folder gets README.md and config.json, and the folder
fgvc push uploads loads back in plain timm with the same logits."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from typer.testing import CliRunner

from fgvc.api import load_run
from fgvc.cli import app
from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.train.run import train

runner = CliRunner()
VIT = ["model.name=vit_tiny_patch16_224", "model.img_size=32", "data.transforms.resize=32", "data.transforms.crop=32"]


@pytest.mark.parametrize("extra", [[], VIT], ids=["cnn", "vit"])
def test_pushed_layout_loads_in_plain_timm_with_the_same_logits(tiny_overrides, tmp_path, extra):
    run_dir = train(load_config(None, tiny_overrides + ["train.epochs=1"] + extra), progress=False).run_dir
    card = (run_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n") and "## Intended use and limits" in card
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"| test | {metrics['test']['top1']:.4f} |" in card
    assert 'timm.create_model("hf-hub:USER/REPO", pretrained=True)' in card
    hub = tmp_path / "hub"
    result = runner.invoke(app, ["push", str(run_dir), "--local-dir", str(hub)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in hub.iterdir()) == sorted(
        ["README.md", "config.json", "model.safetensors", "config.yaml", "classes.json", "metrics.json",
         "report.html"])
    model = timm.create_model(f"local-dir:{hub}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == ["blue", "green", "red"]
    run = load_run(run_dir)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    assert tuple(data_cfg["input_size"]) == (3, run.cfg.data.transforms.crop, run.cfg.data.transforms.crop)
    assert data_cfg["mean"] == pytest.approx(run.norm.mean)
    images = load_data(run.cfg.data).test
    batch = torch.stack([run.eval_transform(images.load(i)) for i in range(len(images))])
    with torch.no_grad():
        assert torch.allclose(model(batch), run.model(batch), atol=1e-5)


def test_push_offline_says_so(tiny_overrides, tmp_path, monkeypatch):
    run_dir = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False).run_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["push", str(run_dir), "me/model"])
    assert result.exit_code == 2 and "HF_HUB_OFFLINE is set" in result.output
    result = runner.invoke(app, ["push", str(tmp_path / "nope"), "--local-dir", str(tmp_path / "h")])
    assert result.exit_code == 2 and "run folder not found" in result.output
    (tmp_path / "a-file").write_text("not a folder")  # unwritable even for root: a path under a file
    result = runner.invoke(app, ["push", str(run_dir), "--local-dir", str(tmp_path / "a-file" / "hub")])
    assert result.exit_code == 2 and "cannot write in" in result.output and "choose another --local-dir" in result.output
    assert "Traceback" not in result.output
    # online as far as the Hub client knows (a new process: its offline flag is read at import), but the
    # Hub cannot be reached (a closed port on this machine): the client's own connection error (httpx's,
    # not an OSError) becomes one line, and nothing is uploaded
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run([str(Path(sys.executable).parent / "fgvc"), "push", str(run_dir), "me/model"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "cannot reach the Hugging Face Hub" in done.stderr and "nothing was uploaded" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_card_says_when_timm_cannot_load_the_run(tiny_overrides):
    from fgvc.report.model_card import loads_in_timm, model_card

    cfg = load_config(None, tiny_overrides + ["model.head_hidden=[16]"])
    assert "head is fgvc's own" in loads_in_timm(cfg)
    card = model_card(cfg, {}, ["a", "b"], "run")
    assert "library_name: pytorch" in card and "Not loadable by plain timm" in card
    # the default label is named, no placeholder link, one epoch is singular
    elpv = model_card(load_config(None, ["data.name=elpv", "train.epochs=1"]), {}, ["a", "b"], "run")
    assert "(label: grade)" in elpv and "https://github.com/" not in elpv and "1 epoch of batch" in elpv
    assert "(label: binary)" in model_card(load_config(None, ["data.name=elpv", "data.label=binary"]), {}, ["a", "b"], "r")
