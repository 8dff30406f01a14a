import json

import pytest
import timm
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.models.strategies import apply_strategy, count_parameters

runner = CliRunner()


def test_study_recipe_trainable_parameters_with_a_1000_class_head():
    vit_cfg = load_config("configs/study_cnn_vs_vit/vit_b16_last_block_attention.yaml")
    vit = apply_strategy(timm.create_model("vit_base_patch16_224", pretrained=False), vit_cfg.strategy)
    attention_block = (768 * 2304 + 2304) + (768 * 768 + 768)
    assert count_parameters(vit)[1] == attention_block + 768 * 1000 + 1000 == 3_131_368  # about 3.1M
    two = apply_strategy(timm.create_model("vit_base_patch16_224", pretrained=False),
                         vit_cfg.strategy.model_copy(update={"attention_blocks": 2}))
    assert count_parameters(two)[1] == 2 * attention_block + 769_000
    cnn_cfg = load_config("configs/study_cnn_vs_vit/cnn_resnet50_layer4.yaml")
    cnn = apply_strategy(timm.create_model("resnet50", pretrained=False), cnn_cfg.strategy)
    assert count_parameters(cnn)[1] == sum(p.numel() for p in cnn.layer4.parameters()) + 2048 * 1000 + 1000


def test_study_command_runs_arms_over_seeds_and_compares(tiny_overrides, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a_cnn.yaml").write_text("model: {name: resnet10t, pretrained: false}\n")
    (folder / "b_vit.yaml").write_text(
        "model: {name: fgvc_vit_tiny, pretrained: false, img_size: 24}\nstrategy: {name: full}\n")
    args = [a for s in tiny_overrides + ["train.epochs=1"] if not s.startswith("model.") for a in ("--set", s)]
    result = runner.invoke(app, ["study", str(folder), *args, "--seeds", "1,2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    study = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [a["name"] for a in study["arms"]] == ["a_cnn", "b_vit"]
    assert study["arms"][0]["trainable_params"] > 0 and study["arms"][1]["seconds_per_epoch"] > 0
    assert study["arms"][0]["metrics"]["top1"]["n"] == 2
    assert study["comparisons"] and "paired seeds" in study["comparisons"][0]["verdict"]
    assert f"{study['arms'][0]['trainable_params']:,}" in result.output


def test_questions_need_a_questions_plan(tmp_path):
    from fgvc.errors import FgvcError
    from fgvc.experiments.study import study

    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("seed: 2\n")
    with pytest.raises(FgvcError, match="--question needs a questions.yaml"):
        study(tmp_path, questions=["lr"], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def write_plan(folder, questions: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text("model: {name: resnet10t, pretrained: false}\n")
    (folder / "questions.yaml").write_text("base: base.yaml\nseeds: [1, 2]\nquestions:\n" + questions)


TWO_QUESTIONS = """
  - name: lr
    title: "Which learning rate?"
    reference: base
    arms:
      base: []
      high: [optim.lr=0.05]
  - name: smoothing
    title: "Label smoothing?"
    reference: plain
    arms:
      plain: []
      smoothed: [loss.name=label_smoothing]
"""


def test_question_study_trains_shared_arms_once_and_writes_paired_tables(tiny_overrides, tmp_path):
    from fgvc.experiments.study import study

    broken = '  - {name: broken, title: "A broken arm", reference: base, arms: {base: [], bad: [model.name=no_such_net]}}\n'
    write_plan(tmp_path / "plan", TWO_QUESTIONS + broken)
    lines = []
    result = study(tmp_path / "plan", out=tmp_path / "out", overrides=tiny_overrides + ["train.epochs=1"],
                   log=lines.append)
    arms = sorted(p.name for p in (tmp_path / "out" / "arms").iterdir())
    # 'base' and 'plain' are one arm, trained once and reused by the two later questions
    assert arms == ["base", "base+loss.name=label_smoothing", "base+model.name=no_such_net", "base+optim.lr=0.05"]
    assert sum("finished earlier, reused" in line for line in lines) == 4
    lr = result["questions"]["lr"]
    assert [a["arm"] for a in lr["arms"]] == ["base", "high"] and lr["arms"][1]["seeds"] == 2
    top1 = next(c for c in lr["comparisons"] if c["metric"] == "top1")
    assert top1["paired"] and top1["n_a"] == 2 and (top1["a"], top1["b"]) == ("base", "high")
    assert top1["diff"] == top1["mean_b"] - top1["mean_a"]
    table = (tmp_path / "out" / "tables.md").read_text()
    assert "### Which learning rate?" in table and "### Label smoothing?" in table
    row = next(line for line in table.splitlines() if line.startswith("| high |"))
    assert "`optim.lr=0.05`" in row and row.split(" | ")[-2].endswith(("better", "worse", "same"))
    saved = json.loads((tmp_path / "out" / "study.json").read_text())
    assert list(saved["questions"]) == ["lr", "smoothing", "broken"]  # a failed question does not end the study
    assert "no_such_net" in saved["questions"]["broken"]["error"]
    assert "Not answered: the question failed" in table

    lines.clear()  # a rerun of one question reuses every finished seed and keeps the other question's result
    again = study(tmp_path / "plan", out=tmp_path / "out", questions=["smoothing"],
                  overrides=tiny_overrides + ["train.epochs=1"], log=lines.append)
    assert sum("training" in line for line in lines if line.startswith("seed-")) == 0
    assert list(again["questions"]) == ["lr", "smoothing", "broken"]
    assert again["questions"]["lr"] == result["questions"]["lr"]

    # the arms' groups hold seeds 1, 2 (and now 3): a question on seeds 2, 3 summarises and pairs those only
    other = study(tmp_path / "plan", out=tmp_path / "out", questions=["smoothing"], seeds=[2, 3],
                  overrides=tiny_overrides + ["train.epochs=1"], log=lines.append)["questions"]["smoothing"]
    assert [a["seeds"] for a in other["arms"]] == [2, 2]
    assert all(a["metrics"]["top1"]["n"] == 2 for a in other["arms"])
    assert all(c["paired"] and c["n_a"] == c["n_b"] == 2 for c in other["comparisons"])


def test_question_study_rejects_bad_plans_before_training(tiny_overrides, tmp_path):
    from fgvc.errors import FgvcError
    from fgvc.experiments.study import study

    write_plan(tmp_path / "typo", TWO_QUESTIONS.replace("optim.lr=0.05", "optim.lrr=0.05"))
    result = runner.invoke(app, ["study", str(tmp_path / "typo"), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "question lr" in result.output and "lrr" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "arms").exists()

    write_plan(tmp_path / "noref", TWO_QUESTIONS.replace("reference: base", "reference: baseline"))
    result = runner.invoke(app, ["study", str(tmp_path / "noref")])
    assert result.exit_code != 0 and "reference 'baseline' is not one of its arms" in result.output

    write_plan(tmp_path / "ok", TWO_QUESTIONS)
    try:
        study(tmp_path / "ok", questions=["losses"], overrides=tiny_overrides)
    except FgvcError as exc:
        assert "no question 'losses'" in str(exc) and "lr, smoothing" in str(exc)
    else:
        raise AssertionError("an unknown question must be an error")


def test_gradual_unfreezing_is_profiled_at_its_last_epoch_and_shows_where_it_starts(tiny_overrides):
    from fgvc.experiments.study import profile
    from fgvc.report.tables import question_markdown

    gradual = profile(load_config(None, tiny_overrides + ["strategy.name=gradual", "strategy.unfreeze_every=1",
                                                          "train.epochs=3"]), 4)
    partial_2 = profile(load_config(None, tiny_overrides + ["strategy.name=partial", "strategy.unfreeze_last=2"]), 4)
    linear = profile(load_config(None, tiny_overrides + ["strategy.name=linear"]), 4)
    # epoch 2 of 3 with a stage every epoch: the top two stages and the head, as partial_2 trains throughout
    assert gradual["trainable_params"] == partial_2["trainable_params"] > linear["trainable_params"]
    assert gradual["trainable_params_at_start"] == linear["trainable_params"]
    assert gradual["param_grad_optimizer_bytes"] == partial_2["param_grad_optimizer_bytes"]
    assert "trainable_params_at_start" not in partial_2
    metrics = {"top1": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 2}}
    table = question_markdown({"title": "Freeze?", "split": "test", "seeds": [1, 2], "reference": "partial",
                               "comparisons": [], "arms": [
                                   {"arm": "partial", "overrides": [], "metrics": metrics, **partial_2},
                                   {"arm": "gradual", "overrides": ["strategy.name=gradual"], "metrics": metrics,
                                    **gradual}]})
    assert f"| {linear['trainable_params']:,} -> {partial_2['trainable_params']:,} |" in table
    assert "gradual unfreezing: at its last epoch" in table


def test_a_count_of_seeds_starts_where_repeat_s_does(tmp_path):
    """One rule: a count counts up from the base seed, the config's ``seed`` (repeat, sweep, search),
    the first config's for a folder of configs, the plan's first seed for a questions.yaml."""
    from fgvc.experiments.repeat import parse_seeds
    from fgvc.experiments.study import base_seed

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.yaml").write_text("seed: 7\nmodel: {name: resnet10t}\n")
    (configs / "b.yaml").write_text("seed: 100\n")
    assert base_seed(configs) == 7 and parse_seeds("3", base_seed(configs)) == [7, 8, 9]
    assert base_seed(configs, ["seed=11"]) == 11
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "base.yaml").write_text("seed: 3\n")
    (plan / "questions.yaml").write_text("base: base.yaml\nseeds: [5, 9]\nquestions:\n  - {name: q, title: Q, "
                                         "reference: a, arms: {a: [], b: [optim.lr=0.1]}}\n")
    assert parse_seeds("2", base_seed(plan)) == [5, 6]
    text = runner.invoke(app, ["study", "--help"], env={"COLUMNS": "300"}).output
    assert "first config's seed" in " ".join(text.split())
