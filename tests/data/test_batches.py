"""uint8 batches in flight: the batch normalised in the main process is bit-for-bit the one workers
would have sent as float32, training gives the same numbers, and erasing there is seeded."""

import numpy as np
import torch
from PIL import Image

from fgvc.config import load_config
from fgvc.data.batches import BatchPreparation
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.train.run import train

from builders import history_rows as history


def test_a_normalised_uint8_batch_equals_the_float_pipeline_bit_for_bit():
    cfg = load_config(None, ["data.transforms.resize=40", "data.transforms.crop=32", "model.name=tf_efficientnet_lite0"])
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)) for _ in range(3)]
    as_float = torch.stack([build_transform(cfg.data.transforms, norm, train=False)(im) for im in images])
    as_uint8 = torch.stack([build_transform(cfg.data.transforms, norm, train=False, uint8=True)(im) for im in images])
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (3, 3, 32, 32)
    prepared = BatchPreparation(norm, cfg.data.transforms).normalize(as_uint8)
    assert prepared.dtype == torch.float32 and torch.equal(prepared, as_float)


def test_uint8_batches_train_exactly_like_float_batches(tiny_overrides):
    uint8 = train(load_config(None, tiny_overrides + ["data.uint8_batches=true"]), progress=False)
    float32 = train(load_config(None, tiny_overrides + ["data.uint8_batches=false"]), progress=False)
    assert history(uint8.run_dir) == history(float32.run_dir)
    assert uint8.test["top1"] == float32.test["top1"] and uint8.test["ece"] == float32.test["ece"]


def test_erasing_in_the_main_process_is_drawn_from_the_seed(tiny_overrides):
    erasing = tiny_overrides + ["data.transforms.re_prob=0.9", "train.epochs=1"]
    first = train(load_config(None, erasing), progress=False)
    again = train(load_config(None, erasing), progress=False)
    plain = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False)
    assert history(first.run_dir) == history(again.run_dir)
    assert history(first.run_dir)[0]["train/loss"] != history(plain.run_dir)[0]["train/loss"]


def test_erase_leaves_the_global_random_state_alone():
    cfg = load_config(None, ["data.transforms.re_prob=1.0"])
    prep = BatchPreparation(resolve_normalization(cfg.data.transforms, cfg.model), cfg.data.transforms)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = prep.erase(torch.zeros(4, 3, 16, 16), seed=1)
    b = prep.erase(torch.zeros(4, 3, 16, 16), seed=1)
    c = prep.erase(torch.zeros(4, 3, 16, 16), seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c) and (a != 0).any()
    assert torch.equal(torch.get_rng_state(), before)
