"""A ViT fed crops of another size than it was made for is built at the crop size (its pretrained
position embeddings interpolated): summary, train, eval and export all work without model.img_size."""

import json

import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from fgvc.api import load_run, plain_model
from fgvc.cli import app
from fgvc.config import ModelConfig, load_config
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.models.factory import create_model, fixed_input_size
from fgvc.runfolder import RunFolder
from fgvc.train.run import train

runner = CliRunner()
VIT_AT_32 = ["model.name=vit_tiny_patch16_224", "data.transforms.resize=32", "data.transforms.crop=32"]


def test_a_vit_is_built_at_the_crop_size_from_224_px_weights(tmp_path):
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10)
    save_file(source.state_dict(), tmp_path / "vit224.safetensors")
    cfg = ModelConfig(name="vit_tiny_patch16_224", pretrained=True, pretrained_file=str(tmp_path / "vit224.safetensors"))
    model, report = create_model(cfg, 3, input_size=48)
    assert model.pos_embed.shape == (1, 1 + 3 * 3, 192)  # 48 px / 16 = 3 x 3 patches and the class token
    assert torch.equal(model.blocks[5].mlp.fc2.weight, source.blocks[5].mlp.fc2.weight)
    assert torch.equal(model.pos_embed[0, 0], source.pos_embed[0, 0])  # the class token's is kept as it is
    assert model.eval()(torch.zeros(2, 3, 48, 48)).shape == (2, 3)
    create_model(ModelConfig(name="resnet10t", pretrained=False), 3, input_size=48)  # a CNN takes any size
    assert fixed_input_size("vit_tiny_patch16_224") == 224 and fixed_input_size("resnet10t") is None


def test_summary_train_eval_and_export_of_a_vit_at_32_px(tiny_overrides, tmp_path):
    overrides = tiny_overrides + VIT_AT_32 + ["train.epochs=1"]
    config = tmp_path / "vit.yaml"
    config.write_text(load_config(None, overrides).to_yaml())
    summary = runner.invoke(app, ["summary", str(config)], env={"COLUMNS": "200"})
    assert summary.exit_code == 0, summary.output
    assert "activations (batch 8, 32px)" in summary.output
    run_dir = train(load_config(None, overrides), progress=False, evaluate=()).run_dir
    run = load_trained(run_dir)
    assert run.model.pos_embed.shape == (1, 1 + 2 * 2, 192)
    assert evaluate_split(run, "test", write=False)["n"] == 12
    card = json.loads(RunFolder(run_dir).timm_config.read_text())  # plain timm builds it at 32 px too
    assert card["model_args"] == {"img_size": 32} and card["pretrained_cfg"]["input_size"] == [3, 32, 32]
    exported = plain_model(load_run(run_dir))  # what fgvc export traces (its ONNX run takes ~15 s more)
    assert exported(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
