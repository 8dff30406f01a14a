"""timm CLIP image towers for fine-tuning, a fine-tune whose head starts from the zero-shot text head
(model.head_init: zero_shot) and WiSE-FT over the two. Offline: TinyCLIP's timm architecture with random
weights in a file, and a tiny random open_clip text tower whose embeddings have the tower's 512 dims."""

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from fgvc.config import load_config
from fgvc.errors import ConfigError, WeightsError
from fgvc.evaluate.runs import load_trained
from fgvc.experiments.wise_ft import wise_ft, zero_shot_start
from fgvc.models.assembly import build_network
from fgvc.models.clip_towers import load_clip, zero_shot_classifier
from fgvc.models.strategies import count_parameters, stage_names
from fgvc.models.wise_ft import interpolate_weights, parse_alphas
from fgvc.runfolder import RunFolder
from fgvc.train.optim import build_param_groups

open_clip = pytest.importorskip("open_clip")  # the vlm extra

TOWER = "vit_xsmall_patch16_clip_224.tinyclip_yfcc15m"  # 10 blocks of 256, projection to 512
TEXT = "fgvc-tiny-text-512"
PX = 32


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(tower file, open_clip file): random, as a downloaded checkpoint would be on disk."""
    folder = tmp_path_factory.mktemp("clip_tower")
    torch.manual_seed(0)
    tower = timm.create_model(TOWER, pretrained=False, num_classes=512, img_size=PX)
    torch.save(tower.state_dict(), folder / "tower.pth")
    config = {"embed_dim": 512, "vision_cfg": {"image_size": PX, "layers": 1, "width": 32, "patch_size": 16,
                                               "head_width": 32},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (folder / f"{TEXT}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{TEXT}.json")
    torch.save(open_clip.create_model(TEXT).state_dict(), folder / "clip.pt")
    return folder / "tower.pth", folder / "clip.pt"


@pytest.fixture
def clip_overrides(tiny_overrides, weights):
    tower, clip = weights
    return [o for o in tiny_overrides if not o.startswith(("model.", "data.transforms.resize", "data.transforms.crop"))] + [
        f"model.name={TOWER}", f"model.pretrained_file={tower}", "model.head_init=zero_shot",
        f"data.transforms.resize={PX}", f"data.transforms.crop={PX}", f"zero_shot.model={TEXT}",
        "zero_shot.pretrained=null", f"zero_shot.pretrained_file={clip}", "zero_shot.templates=photo"]


def test_the_head_starts_as_the_zero_shot_text_head_on_the_clip_tower(clip_overrides, weights):
    cfg = load_config(None, clip_overrides)
    model, report = build_network(cfg, 3, class_names=["red", "green", "blue"])
    text_head = zero_shot_classifier(load_clip(cfg.zero_shot), ["red", "green", "blue"], cfg.zero_shot).head
    assert torch.equal(model.head.weight, text_head.weight) and torch.equal(model.head.bias, text_head.bias)
    tower = torch.load(weights[0])  # CLIP's projection is the tower's own (pretrained) head
    assert torch.equal(model.visual.head.weight, tower["head.weight"])
    assert "head rows are fgvc-tiny-text-512 clip.pt's text embeddings" in str(report)
    with torch.no_grad():  # logits = text head on the normalised projected image embedding
        images = torch.randn(2, 3, PX, PX)
        embedding = torch.nn.functional.normalize(model.visual(images), dim=-1)
        assert torch.allclose(model(images), embedding @ text_head.weight.T, atol=1e-5)
    from fgvc.explain.cam import image_tower, target_layer

    assert target_layer(image_tower(model)) is model.visual.blocks[-1].norm1  # Grad-CAM: tokens, not the stem


def test_the_lr_range_test_starts_the_head_where_training_does(clip_overrides):
    from fgvc.train.tune import _setup  # the range test's network, before its first step

    cfg = load_config(None, clip_overrides)
    module, _, _ = _setup(cfg)
    model, _ = build_network(cfg, 3, class_names=["blue", "green", "red"])
    assert torch.equal(module.model.head.weight, model.head.weight)  # the text head, not a random one


@pytest.mark.parametrize("strategy", ["partial", "lora", "llrd"])
def test_strategies_see_the_towers_blocks(clip_overrides, strategy):
    sets = {"partial": ["strategy.name=partial", "strategy.unfreeze_last=2"], "lora": ["strategy.name=lora"],
            "llrd": ["strategy.layer_decay=0.7"]}[strategy]
    cfg = load_config(None, clip_overrides + sets)
    model, _ = build_network(cfg, 3, class_names=["red", "green", "blue"])
    if strategy == "partial":
        stages = stage_names(model)
        assert stages[0][0] == "visual.patch_embed.proj" and len(stages) == 11  # stem, 10 blocks
        assert stages[-1][0] == "visual.blocks.9.norm1" and stages[-1][-2:] == ["visual.norm", "visual.head"]
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert {"head.weight", "visual.head.weight", "visual.blocks.8.attn.qkv.weight"} <= trainable
        assert not any(n.startswith(("visual.blocks.0.", "visual.patch_embed")) for n in trainable)
    elif strategy == "lora":
        lora = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        assert len(lora) == 2 * 10 and all(".attn.qkv." in n for n in lora)
        assert 0 < count_parameters(model)[1] < count_parameters(model)[0] / 10
    else:
        groups = build_param_groups(model, cfg.optim, cfg.strategy)
        scales = {round(g["lr_scale_applied"], 6) for g in groups}
        assert len(scales) >= 11  # the head, and one per block at least: the blocks are seen
        first = next(g for g in groups if "visual.blocks.0.attn.qkv.weight" in g["param_names"])
        last = next(g for g in groups if "visual.blocks.9.attn.qkv.weight" in g["param_names"])
        assert first["lr_scale_applied"] == pytest.approx(last["lr_scale_applied"] * 0.7 ** 9)


def test_wise_ft_ends_are_the_zero_shot_model_and_the_fine_tune(clip_overrides):
    from fgvc.train.run import train

    cfg = load_config(None, clip_overrides + ["train.epochs=1", "optim.lr=0.003", "eval.batch_size=64"])
    finetune = train(cfg, progress=False).run_dir
    tuned = load_trained(finetune)
    start = zero_shot_start(tuned)
    theta_tuned = tuned.model.state_dict()
    assert not torch.equal(start["head.weight"], theta_tuned["head.weight"])  # training moved it
    for key in ("head.weight", "visual.blocks.3.attn.qkv.weight"):
        assert torch.equal(interpolate_weights(start, theta_tuned, 0.0)[key], start[key])
        assert torch.equal(interpolate_weights(start, theta_tuned, 1.0)[key], theta_tuned[key])
        mid = interpolate_weights(start, theta_tuned, 0.25)[key]
        assert torch.allclose(mid, 0.75 * start[key] + 0.25 * theta_tuned[key], atol=1e-6)

    end = wise_ft(finetune, [1.0])  # alpha 1: the fine-tune's weights and predictions
    assert torch.equal(load_file(RunFolder(end.run_dir).weights_file)["head.weight"], theta_tuned["head.weight"])
    ours, theirs = RunFolder(end.run_dir).predictions("test"), RunFolder(finetune).predictions("test")
    assert [p.predicted for p in ours] == [p.predicted for p in theirs]
    assert end.test["top1"] == json.loads(RunFolder(finetune).metrics_file.read_text())["test"]["top1"]

    chosen = wise_ft(finetune, [0.0, 0.5, 1.0])
    record = chosen.metrics["wise_ft"]
    by_alpha = record["val_top1_by_alpha"]
    assert set(by_alpha) == {"0", "0.5", "1"} and by_alpha[f"{record['alpha']:g}"] == max(by_alpha.values())
    zero = wise_ft(finetune, [0.0])  # alpha 0: the zero-shot start, saved as a run that loads back
    assert torch.equal(load_file(RunFolder(zero.run_dir).weights_file)["head.weight"], start["head.weight"])
    again = load_trained(zero.run_dir)
    assert torch.equal(again.model.state_dict()["visual.blocks.0.mlp.fc1.weight"],
                       start["visual.blocks.0.mlp.fc1.weight"])
    assert "WiSE-FT average" in (zero.run_dir / "README.md").read_text() and "alpha 0 chosen" in \
        (zero.run_dir / "README.md").read_text()
    assert RunFolder(zero.run_dir).status()["status"] == "finished"
    assert "library_name: pytorch" in (zero.run_dir / "README.md").read_text()  # not a plain timm model
    assert not RunFolder(zero.run_dir).timm_config.exists()


def test_the_wise_ft_engine_is_one_run_whose_model_is_the_chosen_average(clip_overrides, monkeypatch):
    """train.engine: wise_ft = the lightning fine-tune, then the average with its start chosen on val: at
    alpha 1 it is the fine-tune (same seed: the same training), otherwise the lerp of the two ends."""
    from fgvc.train.run import train

    tiny = clip_overrides + ["train.epochs=1", "optim.lr=0.003", "eval.batch_size=64"]
    plain = train(load_config(None, tiny + ["output.name=finetune"]), progress=False)
    theta_tuned = load_file(RunFolder(plain.run_dir).weights_file)
    end = train(load_config(None, tiny + ["output.name=end", "train.engine=wise_ft", "wise_ft.alphas=[1.0]"]),
                progress=False)
    assert torch.equal(load_file(RunFolder(end.run_dir).weights_file)["head.weight"], theta_tuned["head.weight"])
    assert end.test["top1"] == plain.test["top1"] and end.metrics["wise_ft"]["alpha"] == 1.0

    def rebuilt(run):
        raise AssertionError("a fresh run mixes with the start it kept, without building the network again")

    with monkeypatch.context() as patched:
        patched.setattr("fgvc.train.engines.wise_ft.zero_shot_start", rebuilt)
        chosen = train(load_config(None, tiny + ["output.name=chosen", "train.engine=wise_ft",
                                                 "wise_ft.alphas=[0, 0.3, 1]"]), progress=False)
    record = chosen.metrics["wise_ft"]
    assert set(record["val_top1_by_alpha"]) == {"0", "0.3", "1"}
    assert record["val_top1_by_alpha"][f"{record['alpha']:g}"] == max(record["val_top1_by_alpha"].values())
    start = zero_shot_start(load_trained(plain.run_dir))
    saved = load_file(RunFolder(chosen.run_dir).weights_file)
    for key in ("head.weight", "visual.blocks.2.mlp.fc1.weight"):
        assert torch.allclose(saved[key], torch.lerp(start[key], theta_tuned[key], record["alpha"]), atol=1e-6)
    again = load_trained(chosen.run_dir)  # eval, predict and export read the average, not best.ckpt
    assert torch.equal(again.model.state_dict()["head.weight"], saved["head.weight"])
    assert RunFolder(chosen.run_dir).status()["status"] == "finished"
    assert "WiSE-FT average" in (chosen.run_dir / "README.md").read_text()
    with pytest.raises(ConfigError, match="is a WiSE-FT average already"):  # not an average of the average
        wise_ft(chosen.run_dir, [0.5])

    lora = train(load_config(None, tiny + ["output.name=lora", "train.engine=wise_ft", "wise_ft.alphas=[0, 1]",
                                           "strategy.name=lora"]), progress=False)  # adapters merged to mix
    assert lora.metrics["wise_ft"]["alpha"] in (0.0, 1.0) and not any(
        "lora_" in key for key in load_file(RunFolder(lora.run_dir).weights_file))


def test_the_wise_ft_engine_refuses_a_head_it_cannot_average(tiny_overrides):
    with pytest.raises(ConfigError, match="train.engine: wise_ft averages a fine-tune with the zero-shot model .* "
                                          "model.head_init is random; set model.head_init: zero_shot"):
        load_config(None, tiny_overrides + ["train.engine=wise_ft"])
    with pytest.raises(ConfigError, match=r"wise_ft.alphas: settings of train.engine: wise_ft"):
        load_config(None, tiny_overrides + ["wise_ft.alphas=[0.5]"])
    with pytest.raises(ConfigError, match=r"every mixing weight must be in \[0, 1\] \(not 1.5\)"):
        load_config(None, tiny_overrides + ["wise_ft.alphas=[0.5, 1.5]"])


def test_wise_ft_refuses_what_it_cannot_average(tiny_overrides):
    from fgvc.train.run import train

    run = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False).run_dir
    with pytest.raises(ConfigError, match="started from model.head_init: random; fine-tune a CLIP tower"):
        wise_ft(run, [0.5])
    assert parse_alphas("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ConfigError, match="every mixing weight must be in"):
        parse_alphas("0,1.5")
    for endless in ("0:1:0", "1:0:0.1"):  # a zero step or a backward range: one line, no ZeroDivisionError
        with pytest.raises(ConfigError, match="give numbers in"):
            parse_alphas(endless)


def test_a_missing_clip_tower_says_where_to_get_it():
    from fgvc.config import ModelConfig
    from fgvc.models.factory import create_model

    with pytest.raises(WeightsError) as caught:
        create_model(ModelConfig(name="vit_base_patch16_clip_224.openai"), 3, 224)
    message = str(caught.value)
    assert "\n" not in message and "https://huggingface.co/timm/vit_base_patch16_clip_224.openai" in message
    assert "set model.pretrained_file" in message


def test_the_command_says_in_one_line_what_is_wrong(tiny_overrides, tmp_path):
    from typer.testing import CliRunner

    from fgvc.cli import app

    result = CliRunner().invoke(app, ["wise-ft", str(tmp_path), "--alphas", "0,2"])
    assert result.exit_code != 0 and "every mixing weight must be in [0, 1] (not 2.0)" in result.output
    assert "Traceback" not in result.output


def test_the_clip_few_shot_study_plan_runs_every_arm_and_pairs_them(clip_overrides, tmp_path):
    """configs/study_clip_fewshot's own plan, question shots_2, on tiny random towers: zero-shot, the probe
    on CLIP features, Tip-Adapter, Tip-Adapter-F, the fine-tune and WiSE-FT, each over two seeds (two
    k-shot draws), every arm paired with zero-shot; then WiSE-FT paired with its own fine-tune."""
    from pathlib import Path

    from fgvc.experiments.study import study

    extra = [o for o in clip_overrides if not o.startswith("output.")] + [
        "train.epochs=1", "schedule.warmup_epochs=0"]
    plan = Path(__file__).resolve().parents[2] / "configs" / "study_clip_fewshot"
    out = tmp_path / "clip_study"
    result = study(plan, seeds=[0, 1], out=out, questions=["shots_2"], overrides=extra, log=lambda _: None)
    shots = result["questions"]["shots_2"]
    assert "error" not in shots, shots.get("error")
    arms = {a["arm"]: a for a in shots["arms"]}
    assert set(arms) == {"zero_shot", "linear_probe_2", "tip_adapter_2", "tip_adapter_f_2", "finetune_2", "wise_ft_2"}
    assert all(a["seeds"] == 2 and 0 <= a["metrics"]["top1"]["mean"] <= 1 for a in arms.values())
    assert {(c["a"], c["b"]) for c in shots["comparisons"] if c["metric"] == "top1"} == {
        ("zero_shot", arm) for arm in arms if arm != "zero_shot"}
    for seed in (0, 1):  # each seed drew its own 2 shots per class (3 classes), recorded in the run
        member = Path(arms["finetune_2"]["group"]) / f"seed-{seed}"
        drawn = json.loads((member / "metrics.json").read_text())["limit_per_class"]
        assert drawn == {"per_class": 2, "seed": seed, "train_images": 6}
        wise = json.loads((Path(arms["wise_ft_2"]["group"]) / f"seed-{seed}" / "metrics.json").read_text())
        assert wise["limit_per_class"] == drawn and 0 <= wise["wise_ft"]["alpha"] <= 1
    assert "wise_ft_2" in (out / "tables.md").read_text()
