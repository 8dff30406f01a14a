import numpy as np
import torch
from PIL import Image

from fgvc.config import ModelConfig, TransformConfig
from fgvc.data.transforms import build_transform, resolve_normalization


def test_normalisation_comes_from_the_models_pretrained_config():
    lite0 = resolve_normalization(TransformConfig(), ModelConfig(name="tf_efficientnet_lite0"))
    assert lite0.mean == (0.5, 0.5, 0.5) and lite0.std == (0.5, 0.5, 0.5)
    assert lite0.interpolation == "bicubic"
    resnet = resolve_normalization(TransformConfig(), ModelConfig(name="resnet18"))
    assert resnet.mean == (0.485, 0.456, 0.406)
    own = resolve_normalization(TransformConfig(mean=(0.1, 0.2, 0.3), std=(1, 1, 1)), ModelConfig(name="resnet18"))
    assert own.mean == (0.1, 0.2, 0.3) and own.source == "config"


def test_eval_pipeline_resizes_short_side_then_centre_crops():
    cfg = TransformConfig(resize=146, crop=128)
    norm = resolve_normalization(cfg, ModelConfig(name="tf_efficientnet_lite0"))
    transform = build_transform(cfg, norm, train=False)
    assert transform.transforms[0].size == 146
    white = Image.new("RGB", (300, 200), (255, 255, 255))
    out = transform(white)
    assert out.shape == (3, 128, 128)
    assert torch.allclose(out, torch.ones_like(out))  # (1 - 0.5) / 0.5


def test_cub_recipe_sizes_512_448():
    cfg = TransformConfig(resize=512, crop=448)
    transform = build_transform(cfg, resolve_normalization(cfg, ModelConfig()), train=False)
    assert transform.transforms[0].size == 512
    assert transform(Image.new("RGB", (500, 375))).shape == (3, 448, 448)


def test_train_pipeline_options_reach_timm():
    cfg = TransformConfig(resize=40, crop=32, scale=(0.5, 1.0), vflip=0.5, auto_augment="randaugment", re_prob=0.25)
    transform = build_transform(cfg, resolve_normalization(cfg, ModelConfig()), train=True)
    names = [type(t).__name__ for t in transform.transforms]
    assert names[0] == "RandomResizedCropAndInterpolation"
    assert transform.transforms[0].scale == (0.5, 1.0)
    assert "RandomVerticalFlip" in names and "RandAugment" in names and "RandomErasing" in names
    assert transform(Image.new("RGB", (64, 48))).shape == (3, 32, 32)


def test_trivialaugment_and_colour_jitter():
    trivial = build_transform(
        TransformConfig(auto_augment="trivialaugment", resize=32, crop=32),
        resolve_normalization(TransformConfig(), ModelConfig()), train=True,
    )
    assert "TrivialAugmentWide" in [type(t).__name__ for t in trivial.transforms]
    jitter = build_transform(
        TransformConfig(color_jitter=0.4, resize=32, crop=32), resolve_normalization(TransformConfig(), ModelConfig()), train=True
    )
    assert "ColorJitter" in [type(t).__name__ for t in jitter.transforms]


def test_rot90_reaches_every_rotation_and_is_seeded():
    import random

    from PIL import Image

    from fgvc.data.transforms import RandomRot90

    image = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4))
    turn = RandomRot90(1.0)
    seen = set()
    for seed in range(40):
        random.seed(seed)
        seen.add(np.asarray(turn(image)).tobytes())
    expected = {np.ascontiguousarray(np.rot90(np.asarray(image), k)).tobytes() for k in (1, 2, 3)}
    assert seen == expected  # p=1: always turned, by each of 90, 180, 270 degrees
    random.seed(3)
    first = np.asarray(turn(image))
    random.seed(3)
    assert np.array_equal(first, np.asarray(turn(image)))
    assert RandomRot90(0.0)(image) is image
