import json

import timm
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.models.strategies import apply_strategy, count_parameters

runner = CliRunner()


def test_study_recipe_trainable_parameters_with_a_1000_class_head():
    vit_cfg = load_config("configs/study_cnn_vs_vit/vit_b16_last_block_attention.yaml")
    vit = apply_strategy(timm.create_model("vit_base_patch16_224", pretrained=False), vit_cfg.strategy)
    attention_block = (768 * 2304 + 2304) + (768 * 768 + 768)
    assert count_parameters(vit)[1] == attention_block + 768 * 1000 + 1000 == 3_131_368  # about 3.1M
    two = apply_strategy(timm.create_model("vit_base_patch16_224", pretrained=False),
                         vit_cfg.strategy.model_copy(update={"attention_blocks": 2}))
    assert count_parameters(two)[1] == 2 * attention_block + 769_000
    cnn_cfg = load_config("configs/study_cnn_vs_vit/cnn_resnet50_layer4.yaml")
    cnn = apply_strategy(timm.create_model("resnet50", pretrained=False), cnn_cfg.strategy)
    assert count_parameters(cnn)[1] == sum(p.numel() for p in cnn.layer4.parameters()) + 2048 * 1000 + 1000


def test_study_command_runs_arms_over_seeds_and_compares(tiny_overrides, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a_cnn.yaml").write_text("model: {name: resnet10t, pretrained: false}\n")
    (folder / "b_vit.yaml").write_text(
        "model: {name: fgvc_vit_tiny, pretrained: false, img_size: 24}\nstrategy: {name: full}\n")
    args = [a for s in tiny_overrides + ["train.epochs=1"] if not s.startswith("model.") for a in ("--set", s)]
    result = runner.invoke(app, ["study", str(folder), *args, "--seeds", "1,2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    study = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [a["name"] for a in study["arms"]] == ["a_cnn", "b_vit"]
    assert study["arms"][0]["trainable_params"] > 0 and study["arms"][1]["seconds_per_epoch"] > 0
    assert study["arms"][0]["metrics"]["top1"]["n"] == 2
    assert study["comparisons"] and "paired seeds" in study["comparisons"][0]["verdict"]
    assert f"{study['arms'][0]['trainable_params']:,}" in result.output
