"""A run folder's model rebuilt from a checkpoint that is not its own: one line, not torch's traceback."""

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import CheckpointError
from fgvc.evaluate.runs import load_trained
from fgvc.train.run import train

runner = CliRunner()


@pytest.fixture
def three_and_two_classes(tiny_overrides, colour_data, tmp_path):
    """A run on the 3 colour classes and one on 2 of them (resnet10t, one epoch each)."""
    two = tmp_path / "two"
    for split in ("train", "test"):
        for name in ("red", "green"):
            shutil.copytree(colour_data / split / name, two / split / name)
    small = [o.replace(str(colour_data), str(two)) for o in tiny_overrides]
    three = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False, evaluate=()).run_dir
    other = train(load_config(None, small + ["train.epochs=1", "output.name=two"]), progress=False, evaluate=()).run_dir
    return three, other


def test_a_checkpoint_with_another_class_count_is_one_line(three_and_two_classes):
    three, two = three_and_two_classes
    shutil.copy(two / "checkpoints" / "last.ckpt", three / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError) as error:
        load_trained(three, "last")
    assert str(error.value).startswith(
        f"{three}/checkpoints/last.ckpt holds resnet10t from {two}, 2 classes but {three} expects resnet10t with "
        "3 classes (config.yaml, classes.json): 2 tensors of another shape, e.g. fc.weight [2, 512] where the model "
        "has [3, 512]; ")
    result = runner.invoke(app, ["eval", str(three), "--checkpoint", "last"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "size mismatch" not in result.output


def test_a_weights_file_of_another_model_is_one_line(tiny_overrides):
    three = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False, evaluate=()).run_dir
    config = yaml.safe_load((three / "config.yaml").read_text())
    config["model"]["name"] = "resnet14t"  # the run's config edited after training: another network
    (three / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError) as error:
        load_trained(three)
    message = str(error.value)
    assert message.startswith(f"{three}/checkpoints/model.safetensors holds 3 classes but {three} expects resnet14t "
                              "with 3 classes (config.yaml, classes.json): another network (")
    assert "\n" not in message and len(message) < 500, message
