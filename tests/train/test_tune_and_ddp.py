import numpy as np
import pytest
from PIL import Image

from fgvc.config import load_config
from fgvc.runfolder import RunFolder
from fgvc.train.run import train
from fgvc.train.tune import find_batch_size, find_lr, suggest_lr


def test_lr_range_test_plots_and_suggests(tiny_overrides, tmp_path):
    finding = find_lr(load_config(None, tiny_overrides), tmp_path / "lr.png", min_lr=1e-5, max_lr=1.0, steps=24)
    assert len(finding.lrs) == 24 and finding.lrs[0] < finding.lrs[-1]
    ratios = np.diff(np.log(finding.lrs))
    assert np.allclose(ratios[1:], ratios[-1])  # an exponential sweep (after its first step)
    # the suggestion is a tenth of the lr of the lowest loss (skipping the first 10 points)
    lowest = 10 + int(np.argmin(finding.losses[10:]))
    assert finding.suggestion == pytest.approx(finding.lrs[lowest] / 10)
    with Image.open(finding.plot) as plot:
        assert plot.size[0] > 100


def test_lr_suggestion_is_a_tenth_of_the_lowest_point_not_the_smallest_lr():
    """Lightning's slope against the lr itself picks the first bend of an exponential sweep (7e-5 for SGD
    on ELPV); the suggestion must come from the lowest loss instead."""
    lrs = list(np.logspace(-7, 0, 60))
    losses = [1.4 - 0.6 * np.exp(-((np.log10(lr) + 1.5) ** 2)) for lr in lrs]  # lowest near 10^-1.5
    suggestion = suggest_lr(lrs, losses)
    assert suggestion == pytest.approx(lrs[int(np.argmin(losses))] / 10)
    assert 1e-3 < suggestion < 1e-2
    assert suggest_lr(lrs[:5], losses[:5]) is None


def test_batch_size_search_doubles(tiny_overrides):
    found = find_batch_size(load_config(None, tiny_overrides), init=2, max_trials=3)
    assert found >= 8  # a tiny model at 24 px fits 2 -> 4 -> 8 -> 16 easily


def test_ddp_two_cpu_processes_match_one(tiny_overrides):
    """DDP through Lightning (gloo): 2 processes x 4 images see the same batches as 1 process x 8, so the
    trained models agree up to float summation order: the same predictions, probabilities within 1e-3."""
    common = tiny_overrides + ["train.epochs=2", "model.name=vit_tiny_patch16_224", "model.img_size=32",
                               "data.transforms.resize=32", "data.transforms.crop=32", "optim.lr=0.002",
                               "train.accelerator=cpu"]
    single = train(load_config(None, common + ["output.name=single", "train.devices=1"]), progress=False)
    double = train(load_config(None, common + ["output.name=ddp", "train.devices=2", "train.distribution=ddp_spawn",
                                               "train.batch_size=4"]), progress=False)
    assert double.metrics["val"]["n"] == single.metrics["val"]["n"] == 12
    one, two = RunFolder(single.run_dir).predictions("test"), RunFolder(double.run_dir).predictions("test")
    assert [r.predicted for r in one] == [r.predicted for r in two]
    assert np.allclose([r.probs for r in one], [r.probs for r in two], atol=1e-3)
    assert double.test["top1"] == single.test["top1"]
