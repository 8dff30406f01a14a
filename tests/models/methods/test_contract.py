"""Every registered fine-grained method, on tiny data, through the whole house: it trains through
``train(cfg)``, its run evaluates, predicts and is explained like any other, and it exports to ONNX
with logits equal to torch's or refuses in one line saying why."""

import pytest
import torch

from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import images_in_folder, load_trained
from fgvc.explain.run_explain import explain_images
from fgvc.export.run_export import export_run
from fgvc.registry import METHODS
from fgvc.train.run import train

# settings that make each method fit 32-64 px images and a tiny backbone
TINY = {
    "bilinear": ["method.high_order.dim=8"],
    "isqrt_cov": ["method.high_order.dim=8"],
    "wsdan": ["method.wsdan.attentions=4"],
    "dcl": ["method.dcl.regions=2", "method.dcl.shuffle_range=1"],
    "transfg": ["model.name=vit_tiny_patch16_224", "model.img_size=64", "data.transforms.resize=64",
                "data.transforms.crop=64"],
    "nts": ["method.nts.part_size=24", "method.nts.proposals=3", "method.nts.parts=2"],
}
METHODS_TO_CHECK = [name for name in METHODS.names() if name != "plain"]


@pytest.mark.parametrize("method", METHODS_TO_CHECK)
def test_method_trains_evaluates_predicts_explains_and_exports(method, tiny_overrides, colour_data, tmp_path):
    overrides = [o for o in tiny_overrides if not o.startswith(("train.epochs", "data.transforms"))]
    overrides += ["train.epochs=1", "data.transforms.resize=32", "data.transforms.crop=32",
                  f"method.name={method}", *TINY.get(method, [])]
    result = train(load_config(None, overrides), progress=False)
    assert 0.0 <= result.test["top1"] <= 1.0
    card = (result.run_dir / "README.md").read_text()  # the model card: fgvc's own network, named with its method
    assert "library_name: pytorch" in card and f"+ {method}`" in card and "method.name" in card
    assert not (result.run_dir / "config.json").exists()  # no timm config.json: timm alone cannot load it

    run = load_trained(result.run_dir)
    assert type(run.model).__module__.startswith("fgvc.models.methods") or method == "plain"
    images = images_in_folder(colour_data / "test" / "red", run.class_names)
    probs = predict_probs(run.model, images, run.eval_transform, batch_size=5)
    assert probs.shape == (len(images), 3) and torch.allclose(probs.sum(1), torch.ones(len(images)), atol=1e-5)

    written = explain_images(result.run_dir, [colour_data / "test" / "red"], out=tmp_path / "explain", run=run)
    assert len(written) == len(images) and all(e.overlay.is_file() for e in written)

    refusal = getattr(run.model, "onnx_refusal", None)
    if refusal:
        with pytest.raises(FgvcError, match=f"cannot export .* to ONNX: {refusal[:20]}"):
            export_run(result.run_dir, "onnx", log=lambda _: None)
        assert "\n" not in refusal
    else:
        exported = export_run(result.run_dir, "onnx", log=lambda _: None)
        assert exported["max_abs_logit_difference"] < 1e-4
