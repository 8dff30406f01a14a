"""fgvc pipeline plan: the balanced split is the exact optimum of the linear-partition problem, never
worse than the equal split, respects the memory limit, and the command writes the plan."""

import itertools
import json
import random

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.pipeline_split import equal_cuts
from fgvc.train.pipeline_plan import BlockCost, balanced_cuts, describe_split, plan_pipeline, stage_memory

runner = CliRunner()


def costs_of(seconds, activation=1000, params=100):
    return [BlockCost(f"b{i}", s, 0.0, activation, 10, params, params) for i, s in enumerate(seconds)]


def slowest(costs, cuts):
    return max(s["seconds"] for s in describe_split(costs, cuts, 4, 8, "1f1b")["stages"])


def test_balanced_cuts_are_the_exact_optimum_on_uneven_blocks():
    rng = random.Random(0)
    for _ in range(30):
        seconds = [rng.choice([0.1, 0.2, 1.0, 3.0]) * rng.random() for _ in range(rng.randint(4, 9))]
        costs, stages = costs_of(seconds), rng.randint(2, 4)
        brute = min(slowest(costs, list(c)) for c in itertools.combinations(range(1, len(costs)), stages - 1))
        best = balanced_cuts(costs, stages, 4, "1f1b")
        assert slowest(costs, best) == pytest.approx(brute)
        assert slowest(costs, best) <= slowest(costs, equal_cuts(len(costs), stages)) + 1e-12
    uneven = costs_of([5.0, 1, 1, 1, 1, 1])  # one heavy block first: the equal split stacks it with two more
    assert slowest(uneven, balanced_cuts(uneven, 2, 4, "1f1b")) == 5.0 < slowest(uneven, equal_cuts(6, 2))


def test_memory_limit_moves_the_cut_or_is_a_clear_error():
    costs = costs_of([1, 1, 1, 1], activation=0, params=100)
    costs[0].param_bytes = costs[0].trainable_bytes = 1000  # a heavy first block
    free = balanced_cuts(costs, 2, 4, "1f1b")
    assert free == [2]
    heavy_with = stage_memory(costs[:2], 0, 2, 4, "1f1b")
    assert balanced_cuts(costs, 2, 4, "1f1b", memory_limit=heavy_with - 1) == [1]
    with pytest.raises(ConfigError, match="no split into 2 stages fits"):
        balanced_cuts(costs, 2, 4, "1f1b", memory_limit=10)
    assert stage_memory(costs_of([1], activation=7), 0, 4, 8, "gpipe") - stage_memory(
        costs_of([1], activation=7), 0, 4, 8, "1f1b") == 7 * (8 - 4)  # 1F1B holds fewer micro-batches


def test_plan_measures_a_real_model_and_the_cli_writes_it(tmp_path, colour_data):
    sets = ["model.name=resnet10t", "model.pretrained=false", "data.name=image_folder",
            f"data.root={colour_data / 'train'}", "data.transforms.resize=32", "data.transforms.crop=32",
            "train.batch_size=8", "train.pipeline.microbatches=2", "strategy.name=full", "train.threads=1"]
    plan = plan_pipeline(load_config(None, sets), stages=3, repeats=1, num_classes=3)
    assert [b["name"] for b in plan["blocks"]][:2] == ["stem", "layer1.0"] and plan["microbatch"] == 4
    assert all(b["forward_s"] > 0 and b["backward_s"] > 0 and b["activation_bytes"] > 0 for b in plan["blocks"])
    bottleneck = {k: max(s["seconds"] for s in plan[k]["stages"]) for k in ("equal", "balanced")}
    assert bottleneck["balanced"] <= bottleneck["equal"] + 1e-12
    assert plan["balanced"]["bubble_fraction"] == pytest.approx(2 / 4)
    args = [a for s in sets for a in ("--set", s)]
    result = runner.invoke(app, ["pipeline", "plan", str(tmp_path / "none.yaml"), *args])
    assert result.exit_code == 2 and "none.yaml" in result.output
    (tmp_path / "exp.yaml").write_text("{}\n")
    result = runner.invoke(app, ["pipeline", "plan", str(tmp_path / "exp.yaml"), *args, "--stages", "2",
                                 "--repeats", "1", "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert "balanced split" in result.output and "<- bottleneck" in result.output
    written = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert written["stages"] == 2 and (tmp_path / "plan" / "plan.png").stat().st_size > 1000
    too_many = runner.invoke(app, ["pipeline", "plan", str(tmp_path / "exp.yaml"), *args, "--stages", "99"])
    assert too_many.exit_code == 2 and "99 pipeline stages for a model of" in too_many.output

