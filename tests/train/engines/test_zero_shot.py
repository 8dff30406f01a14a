"""The zero-shot engine on a tiny, randomly initialised open_clip model (registered from a config dict,
weights in a local file): nothing is downloaded, the real code path runs."""

import builtins
import json

import pytest
from builders import make_tiny_open_clip
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError, FgvcError, WeightsError
from fgvc.evaluate.runs import load_trained
from fgvc.models.clip_towers import load_clip, require_open_clip, zero_shot_classifier
from fgvc.runfolder import RunFolder

open_clip = pytest.importorskip("open_clip")  # the vlm extra

TINY = "fgvc-tiny-clip"
TOWER_PX = 32  # the tower's input size: the run must resize to it (the colour images are 24 px)


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory):
    """The tiny CLIP of tests/builders.py, registered with open_clip as TINY, its weights in a file."""
    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny_clip"), TINY)


@pytest.fixture
def zero_shot_overrides(tiny_overrides, tiny_clip_file):
    # resize/crop back at their defaults: the tower's own preprocessing (32 px, CLIP mean/std, bicubic) applies
    return tiny_overrides + ["train.engine=zero_shot", "data.transforms.resize=256", "data.transforms.crop=224",
                             f"zero_shot.model={TINY}", "zero_shot.pretrained=null",
                             f"zero_shot.pretrained_file={tiny_clip_file}", "zero_shot.templates=photo"]


def test_the_head_rows_are_the_normalised_mean_of_each_class_prompts(zero_shot_overrides):
    cfg = load_config(None, zero_shot_overrides + ["zero_shot.templates=generic"])
    clip = load_clip(cfg.zero_shot)
    classifier = zero_shot_classifier(clip, ["001.Dark_red", "n02085620-green"], cfg.zero_shot)
    scale = clip.model.logit_scale.exp().item()
    from fgvc.models.prompts import TEMPLATE_SETS

    for row, name in enumerate(["dark red", "green"]):
        texts = [t.format(name) for t in TEMPLATE_SETS["generic"]]
        with torch.no_grad():
            each = F.normalize(clip.model.encode_text(clip.tokenizer(texts)), dim=-1)
        by_hand = F.normalize(each.mean(0), dim=-1) * scale
        assert torch.allclose(classifier.head.weight[row], by_hand, atol=1e-5)
    assert classifier.head.bias.abs().max() == 0  # CLIP has no logit bias (SigLIP's would be here)


def test_the_engine_writes_a_run_that_loads_back_with_the_same_probabilities(zero_shot_overrides):
    from fgvc.api import predict
    from fgvc.data import load_data
    from fgvc.train.run import train

    result = train(load_config(None, zero_shot_overrides), progress=False)
    folder = RunFolder(result.run_dir)
    assert folder.status()["status"] == "finished"
    metrics = json.loads(folder.metrics_file.read_text())
    assert {"top1", "f1_macro"} <= set(metrics["test"]) and metrics["parameters"]["trainable"] == 0
    assert metrics["zero_shot"]["preprocessing"]["crop"] == TOWER_PX
    assert folder.report_file.is_file() and len(folder.predictions("test")) == 12
    card = (folder.path / "README.md").read_text()  # the model card names the CLIP tower, not model.name
    assert f"`{TINY}`" in card and "library_name: pytorch" in card and "resnet" not in card
    assert "engine `zero_shot` (" in card and "optimizer" not in card and "epoch" not in card  # nothing trained

    run = load_trained(folder.path)
    assert run.cfg.data.transforms.crop == TOWER_PX and run.norm.interpolation == "bicubic"
    assert run.norm.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    probs = predict(run, load_data(run.cfg.data).test)
    written = torch.tensor([row.probs for row in folder.predictions("test")])
    assert torch.allclose(probs, written, atol=1e-5)


def test_grad_cam_on_the_open_clip_tower_weighs_its_last_block_tokens(zero_shot_overrides):
    """Not the patch-embedding convolution (the last Conv2d of the tower): the last residual block's
    tokens, reshaped to the patch grid without the class token."""
    from fgvc.explain.cam import class_activation_maps, image_tower, target_layer, vit_reshape
    from fgvc.explain.run_explain import choose_method
    from fgvc.train.run import train

    run = load_trained(train(load_config(None, zero_shot_overrides), progress=False).run_dir)
    tower = image_tower(run.model)
    assert target_layer(tower) is run.model.visual.transformer.resblocks[-1].ln_1
    grid = vit_reshape(tower)(torch.zeros(2, 1 + 16, 64))  # 32 px / patch 8: 4 x 4 patches after the class token
    assert grid.shape == (2, 64, 4, 4)
    assert choose_method(run, None) == "gradcam"
    torch.manual_seed(0)
    maps = class_activation_maps(run.model, torch.randn(2, 3, TOWER_PX, TOWER_PX))
    assert maps.shape == (2, TOWER_PX, TOWER_PX) and all(m.max() > m.min() for m in maps)


def test_a_siglip_shaped_model_keeps_its_logit_bias_and_its_timm_trunk_explains(tiny_overrides, tmp_path):
    """SigLIP's shape offline: a timm ViT trunk with attention-pool (MAP) pooling inside open_clip's
    TimmModel, a learned logit bias (init -10). Only the tokenizer differs: SigLIP's comes from the
    Hugging Face hub, so this model uses CLIP's (its name has no 'siglip', which would fetch it)."""
    from fgvc.explain.cam import class_activation_maps, image_tower, target_layer
    from fgvc.train.run import train

    config = {"embed_dim": 192, "init_logit_bias": -10.0,
              "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                             "timm_pool": "map", "timm_proj": "none", "image_size": 224},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
                           "no_causal_mask": True, "proj_bias": True, "pool_type": "last"}}
    (tmp_path / "fgvc-tiny-sigmoid.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "fgvc-tiny-sigmoid.json")
    torch.manual_seed(0)
    weights = tmp_path / "sigmoid.pt"
    torch.save(open_clip.create_model("fgvc-tiny-sigmoid").state_dict(), weights)
    overrides = tiny_overrides + ["train.engine=zero_shot", "data.transforms.resize=256", "data.transforms.crop=224",
                                  "zero_shot.model=fgvc-tiny-sigmoid", "zero_shot.pretrained=null",
                                  f"zero_shot.pretrained_file={weights}", "zero_shot.templates=photo"]
    run = load_trained(train(load_config(None, overrides), progress=False).run_dir)
    assert torch.all(run.model.head.bias == -10.0)  # the logit bias is the head's bias
    tower = image_tower(run.model)  # open_clip's TimmModel -> its timm trunk
    assert type(tower).__name__ == "VisionTransformer" and target_layer(tower) is tower.blocks[-1].norm1
    maps = class_activation_maps(run.model, torch.randn(1, 3, 224, 224))
    assert maps.shape == (1, 224, 224) and maps.max() > maps.min()


def test_onnx_export_of_tower_and_head_gives_torchs_logits(zero_shot_overrides, tmp_path):
    pytest.importorskip("onnxruntime")
    from fgvc.export.run_export import export_run
    from fgvc.train.run import train

    result = train(load_config(None, zero_shot_overrides), progress=False)
    exported = export_run(result.run_dir, "onnx", out=tmp_path / "export", log=lambda _: None)
    assert exported["metadata"]["input_size"] == [3, TOWER_PX, TOWER_PX]
    assert exported["max_abs_logit_difference"] < 1e-3


def test_missing_weights_offline_are_one_line_naming_what_to_download(monkeypatch, tiny_overrides):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", "/nonexistent/hub-cache")
    cfg = load_config(None, tiny_overrides + ["train.engine=zero_shot", "zero_shot.model=ViT-B-32",
                                              "zero_shot.pretrained=laion2b_s34b_b79k"])
    with pytest.raises(WeightsError) as caught:
        load_clip(cfg.zero_shot)
    message = str(caught.value)
    assert "\n" not in message
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message and "zero_shot.pretrained_file" in message


def test_a_missing_open_clip_is_one_line_naming_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_open_clip(name, *args, **kwargs):
        if name == "open_clip" or name.startswith("open_clip."):
            raise ImportError("No module named 'open_clip'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open_clip)
    with pytest.raises(FgvcError, match=r"^train.engine: zero_shot .* pip install 'fgvc\[vlm\]'$") as caught:
        require_open_clip()
    assert "\n" not in str(caught.value)


def test_config_rules(zero_shot_overrides, tiny_overrides):
    with pytest.raises(ConfigError, match="zero_shot.templates 'bird' is not a template set"):
        load_config(None, zero_shot_overrides + ["zero_shot.templates=bird"])
    with pytest.raises(ConfigError, match=r"template 'a photo' must hold the class name as one \{\}"):
        load_config(None, zero_shot_overrides + ["zero_shot.templates=[a photo]"])
    with pytest.raises(ConfigError, match=r"zero_shot.model: settings of train.engine: zero_shot"):
        load_config(None, tiny_overrides + ["zero_shot.model=ViT-L-14"])
    # a crop the tower cannot take is one line, before any folder is claimed
    from fgvc.train.run import train

    cfg = load_config(None, zero_shot_overrides + ["data.transforms.resize=24", "data.transforms.crop=24"])
    with pytest.raises(ConfigError, match=f"takes {TOWER_PX} px images"):
        train(cfg, progress=False)
    assert not cfg.run_dir.exists()
