"""Old config keys still load, each moved to its new key with a warning said once."""

import warnings

import pytest
import yaml

from fgvc.config import load_config
from fgvc.config import aliases
from fgvc.config.aliases import RenamedConfigKey


@pytest.fixture(autouse=True)
def fresh():
    aliases._said.clear()
    yield


def test_old_probe_config_loads_as_the_new_one(tmp_path):
    old = {"strategy": {"name": "features", "probe_head": "logreg", "probe_c": "auto", "feature_views": 2,
                        "feature_engine": "torch", "probe_pooling": ["avg", "max"], "probe_standardize": True},
           "train": {"strategy": "auto", "epochs": 3}}
    new = {"strategy": {"name": "linear"}, "probe": {"head": "logreg", "c": "auto", "views": 2, "runtime": "torch",
                                                     "pooling": ["avg", "max"], "standardize": True},
           "train": {"engine": "probe", "distribution": "auto", "epochs": 3}}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    with pytest.warns(RenamedConfigKey) as said:
        loaded = load_config(tmp_path / "old.yaml")
    messages = {str(w.message) for w in said}
    assert "config key strategy.probe_c is now probe.c; the old name still works" in messages
    assert any("strategy.name: features is now train.engine: probe" in m for m in messages)
    assert any("train.strategy (Lightning's distribution) is now train.distribution" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys warn about nothing
        expected = load_config(tmp_path / "new.yaml")
    assert loaded.model_dump() == {**expected.model_dump(), "output": loaded.model_dump()["output"]}


def test_each_rename_is_said_once_per_process():
    with pytest.warns(RenamedConfigKey):
        load_config(None, ["train.strategy=ddp"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(None, ["train.strategy=ddp"]).train.distribution == "ddp"


def test_old_pipeline_key_and_overrides_of_a_dumped_config():
    with pytest.warns(RenamedConfigKey, match="train.strategy: pipeline is now train.engine: pipeline"):
        cfg = load_config(None, ["train.strategy=pipeline", "train.batch_size=8"])
    assert (cfg.train.engine, cfg.train.distribution) == ("pipeline", "auto")
    # an old override on a dumped (new-key) config wins over the dumped default, as --set always does
    from fgvc.experiments.groups import member_config

    with pytest.warns(RenamedConfigKey):
        arm = member_config(load_config(None), ["strategy.name=features", "strategy.probe_c=0.5"])
    assert (arm.train.engine, arm.strategy.name, arm.probe.c) == ("probe", "linear", 0.5)
