import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import ExperimentConfig, apply_overrides, load_config
from fgvc.errors import ConfigError

runner = CliRunner()


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_and_yaml_values(tmp_path):
    cfg = load_config(write(tmp_path, "optim:\n  lr: 0.01\nseed: 3\ndata:\n  transforms:\n    crop: 448\n    resize: 512\n"))
    assert cfg.optim.lr == 0.01 and cfg.seed == 3
    assert cfg.data.transforms.crop == 448
    assert cfg.output.name == "exp"
    assert isinstance(load_config(), ExperimentConfig)


def test_set_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 0.01\n")
    cfg = load_config(path, ["optim.lr=0.5", "train.precision=bf16-mixed", "data.transforms.scale=[0.3, 1.0]",
                             "model.pretrained=false", "eval.tta=[flip]"])
    assert cfg.optim.lr == 0.5
    assert cfg.train.precision == "bf16-mixed"
    assert cfg.data.transforms.scale == (0.3, 1.0)
    assert cfg.model.pretrained is False
    assert cfg.eval.tta == ["flip"]
    assert load_config(None, ["train.precision=32"]).train.precision == "32"  # YAML's number 32


def test_unknown_key_names_key_and_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "optim:\n  learning_rate: 0.1\n"))
    message = str(info.value)
    assert "unknown key 'optim.learning_rate'" in message
    assert "valid keys here: betas, l1, lr, momentum, name, nesterov" in message
    assert "exp.yaml" in message


def test_unknown_section_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer' \(did you mean 'optim'\?\); valid keys here: data, diffusion, eval, executor, gan, loss"):
        load_config(None, ["optimizer.lr=1"])


def test_wrong_type_and_impossible_values_all_reported():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["optim.lr=-0.1", "train.epochs=abc", "data.transforms.resize=256",
                           "data.transforms.crop=448", "data.val_fraction=1.5"])
    message = str(info.value)
    assert "optim.lr: Input should be greater than 0 (got -0.1)" in message
    assert "train.epochs: Input should be a valid integer" in message
    assert "data.transforms.crop: crop (448) is larger than resize (256)" in message
    assert "data.val_fraction" in message


def test_a_check_that_names_the_value_is_not_followed_by_it_again():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["gan.image_size=16"])
    assert str(info.value).endswith("gan.image_size: image_size must be 32, 64 or 128 (got 16)")


def test_bad_choices_name_the_options():
    with pytest.raises(ConfigError, match=r"data.label: label 'colour' is not one of \['grade', 'binary', 'type'\]"):
        load_config(None, ["data.name=elpv", "data.label=colour"])
    with pytest.raises(ConfigError, match="unknown augmentation policy 'magic'"):
        load_config(None, ["data.transforms.auto_augment=magic"])
    with pytest.raises(ConfigError, match="train.precision: Input should be '32', '16-mixed' or 'bf16-mixed'"):
        load_config(None, ["train.precision=16"])


def test_malformed_overrides():
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match=r"seed is a value \(42\), not a section"):
        apply_overrides({"seed": 42}, ["seed.x=1"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="exp.yaml: not valid YAML"):
        load_config(write(tmp_path, "optim: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_cli_config_show_prints_resolved_config(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 0.01\n")
    result = runner.invoke(app, ["config", "show", str(path), "--set", "optim.lr=0.2", "--set", "seed=7"])
    assert result.exit_code == 0, result.output
    assert "  lr: 0.2  # " in result.output and "\nseed: 7\n" in result.output
    assert "transforms:" in result.output  # defaults filled in


def test_config_show_describes_each_key_and_hides_unused_sections(tmp_path):
    import yaml

    from fgvc.config import ExperimentConfig

    path = write(tmp_path, "optim:\n  lr: 0.01\ngan:\n  z_dim: 64\n")
    shown = runner.invoke(app, ["config", "show", str(path)]).output
    assert "  lr: 0.01  # peak learning rate (after warmup)\n" in shown
    assert "    crop: 224  # network input size (train and eval)\n" in shown
    assert "\ngan:" in shown and "\ndiffusion:" not in shown and "\nexecutor:" not in shown
    assert "not used by this config (fgvc config show --all prints them): executor, diffusion, stable_diffusion" in shown
    loaded = ExperimentConfig.model_validate(yaml.safe_load(shown))  # still YAML, comments and all
    assert loaded.model_dump(include={"optim", "data", "gan"}) == load_config(path).model_dump(
        include={"optim", "data", "gan"})
    everything = runner.invoke(app, ["config", "show", str(path), "--all"]).output
    assert "\ndiffusion:" in everything and "\nstable_diffusion:" in everything and "not used" not in everything
    described = [line for line in everything.splitlines() if ":" in line and not line.startswith("#")]
    assert all("  # " in line for line in described if line.startswith("  ")), "a key without a description"


def test_cli_errors_without_traceback(tmp_path):
    result = runner.invoke(app, ["config", "show", str(write(tmp_path, "optim:\n  lr: -1\n"))])
    assert result.exit_code == 2
    assert "error:" in result.output and "optim.lr" in result.output
    assert "Traceback" not in result.output


def test_every_recipe_in_configs_validates():
    from pathlib import Path

    from fgvc.experiments.study import PLAN_FILE, arm_config, load_plan
    from fgvc.experiments.search_space import SPACE_FILE, load_space

    recipes = sorted(Path(__file__).parents[2].joinpath("configs").rglob("*.yaml"))
    assert recipes
    for recipe in recipes:
        if recipe.name == PLAN_FILE:  # a study plan: every arm of every question must validate
            plan = load_plan(recipe.parent)
            for question in plan.questions:
                for overrides in question.arms.values():
                    arm_config(recipe.parent, plan, question, overrides)
        elif recipe.name == SPACE_FILE:  # a search space: every key and value it can draw
            assert load_space(recipe, load_config())
        else:
            load_config(recipe)

