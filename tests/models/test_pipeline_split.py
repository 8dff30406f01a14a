"""Pipeline pieces: for every supported family the pieces, composed in order (and cut into stages),
compute exactly the whole model; each parameter is owned by exactly one piece."""

import pytest
import timm
import torch

import fgvc.models  # noqa: F401  (registers fgvc's ViT with timm)
from fgvc.errors import ConfigError
from fgvc.models.pipeline_split import build_stages, equal_cuts, split_into_pieces

FAMILIES = {
    "resnet10t": {},
    "tf_efficientnet_lite0": {},
    "convnext_atto": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "fgvc_vit_tiny": {"img_size": 32},
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_pieces_and_stages_compose_to_the_whole_model(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5, **FAMILIES[name]).eval()
    pieces = split_into_pieces(model)
    assert pieces[0].name == "stem" and pieces[-1].name == "head" and len(pieces) >= 5
    owned = [id(p) for piece in pieces for p in piece.parameters()]
    assert sorted(owned) == sorted(id(p) for p in model.parameters())  # each exactly once
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        whole = model(x)
        y = x
        for stage in build_stages(pieces, equal_cuts(len(pieces), 3)):
            y = stage(y)
    assert y.shape == (3, 5) and torch.equal(y, whole)


def test_bad_stage_counts_and_cuts_are_clear_errors():
    pieces = split_into_pieces(timm.create_model("resnet10t", pretrained=False, num_classes=2))
    with pytest.raises(ConfigError, match=f"40 pipeline stages for a model of {len(pieces)} blocks"):
        equal_cuts(len(pieces), 40)
    with pytest.raises(ConfigError, match="must rise strictly"):
        build_stages(pieces, [3, 3])
    with pytest.raises(ConfigError, match="cannot split Sequential"):
        split_into_pieces(torch.nn.Sequential(torch.nn.Linear(2, 2)))
