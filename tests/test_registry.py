"""Registries: one decorator line registers a thing; the config's choices and errors come from them."""

import pytest

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.registry import CONFIG_CHOICES, ENGINES, METHODS, POOLINGS, SOURCES, STRATEGIES, Registry, RegistryError


def test_register_check_and_suggest():
    registry = Registry("widget", "fgvc.errors", "register_widget")  # a module that declares no widget

    @registry.register("round", sides=0)
    def round_widget():
        """a widget without corners."""

    assert registry.names() == ["round"] and registry.get("round") is round_widget
    assert registry.doc("round") == "a widget without corners" and registry.info("round") == {"sides": 0}
    with pytest.raises(RegistryError, match=r"unknown widget 'rund' \(did you mean 'round'\?\); choose one of: round"):
        registry.check("rund")
    with pytest.raises(RegistryError, match="widget 'round' is registered twice"):
        registry.register("round")(lambda: None)


def test_every_builtin_is_registered_and_the_config_accepts_exactly_those():
    assert SOURCES.names() and set(SOURCES.names()) >= {"elpv", "cub200", "image_folder", "kaggle_csv"}
    assert set(STRATEGIES.names()) == {"full", "linear", "partial", "attention", "lora", "gradual"}
    assert set(ENGINES.names()) == {"lightning", "pipeline", "probe", "tip_adapter", "wise_ft", "zero_shot"}
    assert set(POOLINGS.names()) == {"avg", "max", "bilinear", "cov"}
    assert set(METHODS.names()) >= {"plain", "bilinear", "isqrt_cov"}
    for key, registry in CONFIG_CHOICES.items():
        section, name = key.split(".")
        for value in registry.names():
            shown = f"[{value}]" if key == "probe.pooling" else value
            extra = ["train.engine=probe"] if section == "probe" else []
            if (key, value) == ("train.engine", "wise_ft"):  # averages a fine-tune with its zero-shot start
                extra = ["model.head_init=zero_shot"]
            assert getattr(getattr(load_config(None, extra + [f"{key}={shown}"]), section), name) in (value, [value])
        with pytest.raises(ConfigError, match=f"{key}: unknown {registry.what} 'nonsense'; choose one of: "):
            load_config(None, [f"{key}=[nonsense]" if key == "probe.pooling" else f"{key}=nonsense",
                               *(["train.engine=probe"] if section == "probe" else [])])


def test_label_choices_come_from_the_source_registration():
    assert load_config(None, ["data.name=fgvc_aircraft", "data.label=family"]).data.label == "family"
    with pytest.raises(ConfigError, match=r"label 'grade' is not one of \['variant', 'family', 'manufacturer'\]"):
        load_config(None, ["data.name=fgvc_aircraft", "data.label=grade"])
    with pytest.raises(ConfigError, match="only elpv draws its own test split; cub200 has an official one"):
        load_config(None, ["data.name=cub200", "data.test_split_seed=1"])


def test_names_and_details_are_read_from_source_without_importing_the_heavy_layers():
    """A misspelt name, a wrong label or an unknown key is refused in a fresh process before torch,
    Lightning or timm are imported (the registries read their decorators as text)."""
    import subprocess
    import sys

    code = ("import sys; from fgvc.config import load_config; from fgvc.errors import ConfigError\n"
            "for bad in (['data.name=elvp'], ['data.name=elpv', 'data.label=grades'], ['train.engine=probes'],\n"
            "            ['strategy.name=partal'], ['optim.lrr=1']):\n"
            "    try: load_config(None, bad); raise SystemExit('accepted ' + str(bad))\n"
            "    except ConfigError: pass\n"
            "from fgvc.registry import ENGINES, SOURCES, STRATEGIES\n"
            "assert STRATEGIES.info('gradual') == {'pipeline': False, 'opens_over_epochs': True}\n"
            "assert ENGINES.info('probe')['settings'] == ('probe',) and 'probe' in ENGINES.names()\n"
            "assert SOURCES.info('elpv')['labels'] == ('grade', 'binary', 'type')\n"
            "print(sorted(m for m in ('torch', 'lightning', 'timm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "[]"


def test_a_declared_thing_is_imported_when_asked_for():
    from fgvc.models.strategies import partial

    assert STRATEGIES.get("partial") is partial and STRATEGIES.doc("partial").startswith("the head and the last")
