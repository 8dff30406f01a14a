import timm
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import StrategyConfig
from fgvc.models.strategies import apply_strategy
from fgvc.models.summary import summarize

runner = CliRunner()


def test_cli_summary_resnet18_linear_200_classes(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("model: {name: resnet18, pretrained: false}\nstrategy: {name: linear}\n")
    result = runner.invoke(app, ["summary", str(config), "--num-classes", "200", "--no-measure"])
    assert result.exit_code == 0, result.output
    assert "11,279,112" in result.output and "102,600" in result.output and "11,176,512" in result.output


def test_memory_figures_follow_counts_and_activations_are_measured():
    model = apply_strategy(timm.create_model("resnet10t", num_classes=10), StrategyConfig(name="full"))
    small = summarize(model, "resnet10t", "full", "adamw", batch_size=2, image_size=64)
    large = summarize(model, "resnet10t", "full", "adamw", batch_size=4, image_size=64)
    assert small.param_bytes == 4 * small.total_params
    assert small.grad_bytes == 4 * small.trainable_params
    assert small.optimizer_bytes == 2 * small.grad_bytes
    assert small.activation_bytes > 0
    assert 1.8 < large.activation_bytes / small.activation_bytes < 2.2  # activations scale with the batch
    partial = apply_strategy(timm.create_model("resnet10t", num_classes=10), StrategyConfig(name="partial"))
    frozen_most = summarize(partial, "resnet10t", "partial", "adamw", batch_size=2, image_size=64)
    assert frozen_most.activation_bytes < small.activation_bytes / 2  # frozen stages keep no activations
    sgd = summarize(model, "resnet10t", "partial", "sgd")
    assert sgd.optimizer_bytes == sgd.grad_bytes and sgd.activation_bytes is None
