"""The engine seam: a new way to train is one class and one registration; `train(cfg)` claims the
folder, records it and runs the shared finish whatever the engine."""

import json

import numpy as np
import pytest
import torch

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.registry import ENGINES, register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.engines.base import Engine
from fgvc.train.result import Fitted
from fgvc.train.run import train


class PriorEngine(Engine):
    """predicts the training split's class frequencies for every image"""

    @classmethod
    def check_config(cls, cfg):
        if cfg.train.batch_size == 7:
            raise ValueError("the prior engine refuses train.batch_size 7")

    def fit(self, folder, stop_request, resume_from):
        counts = torch.as_tensor(self.splits.train.class_counts(), dtype=torch.float32)
        prior = counts / counts.sum()
        probabilities = {name: prior.repeat(len(images), 1) for name, images in self.splits.named()
                         if name != "train" and images is not None}
        return Fitted(epochs=0, parameters=(0, 0), probabilities=probabilities, extra={"prior": prior.tolist()})


@pytest.fixture
def prior_engine():
    register_engine("prior")(PriorEngine)
    yield
    ENGINES.unregister("prior")


def test_a_registered_engine_trains_through_train_and_the_shared_finish(prior_engine, tiny_overrides):
    result = train(load_config(None, tiny_overrides + ["train.engine=prior"]), progress=False)
    folder = RunFolder(result.run_dir)
    assert folder.status()["status"] == "finished"
    assert load_config(folder.config_file).train.engine == "prior"
    assert folder.class_names() == ["blue", "green", "red"]
    metrics = json.loads(folder.metrics_file.read_text())
    assert metrics["prior"] == pytest.approx([1 / 3] * 3, abs=0.05) and metrics["epochs"] == 0
    # every test image gets the same prediction: top-1 is the share of the predicted class
    predictions = folder.predictions("test")
    assert len(predictions) == 12 and len({p.predicted for p in predictions}) == 1
    assert metrics["test"]["top1"] == pytest.approx(np.mean([p.right for p in predictions]))
    assert folder.report_file.is_file() and folder.split_metrics_file("val").is_file()


def test_an_engine_checks_its_own_settings_at_config_time(prior_engine, tiny_overrides):
    with pytest.raises(ConfigError, match="the prior engine refuses train.batch_size 7"):
        load_config(None, tiny_overrides + ["train.engine=prior", "train.batch_size=7"])


def test_settings_of_another_engine_are_refused(tiny_overrides):
    with pytest.raises(ConfigError, match=r"probe.head, probe.c: settings of train.engine: probe, which this config "
                                          r"does not use \(train.engine: lightning\)"):
        load_config(None, tiny_overrides + ["probe.head=logreg", "probe.c=auto"])
    with pytest.raises(ConfigError, match="train.engine: probe trains the head alone on frozen features; "
                                          "strategy.name is full"):
        load_config(None, tiny_overrides + ["train.engine=probe", "strategy.name=full"])
    assert load_config(None, ["train.engine=probe"]).strategy.name == "linear"  # the probe's own default
    with pytest.raises(ConfigError, match="train.engine: pipeline cannot be combined with .*train.distribution"):
        load_config(None, tiny_overrides + ["train.engine=pipeline", "train.distribution=ddp"])


def test_crop_and_model_img_size_must_agree():
    with pytest.raises(ConfigError, match=r"model.img_size \(32\) differs from data.transforms.crop \(24\)"):
        load_config(None, ["model.img_size=32", "data.transforms.resize=24", "data.transforms.crop=24"])
    assert load_config(None, ["model.img_size=24", "data.transforms.resize=24", "data.transforms.crop=24"])
