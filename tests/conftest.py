import os
import sys
from pathlib import Path

# Never wait on a hub that cannot be reached: tests are offline by design.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist (`make test` runs one worker per core) each worker, and every process it starts,
# keeps to one torch thread: two workers with a thread per core each oversubscribe the cores and
# spin-wait (measured: slower than one serial worker).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory):
    from builders import make_colour_classes

    root = tmp_path_factory.mktemp("colours")
    make_colour_classes(root / "train", per_class=16)
    make_colour_classes(root / "test", per_class=4, seed=321)
    return root


@pytest.fixture
def tiny_overrides(colour_data, tmp_path):
    """--set overrides for a fast, learnable run on the colour fixture with a tiny random CNN."""
    return [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
        "data.val_fraction=0.25", "data.num_workers=0",
        "data.transforms.resize=24", "data.transforms.crop=24", "data.transforms.hflip=0",
        "model.name=resnet10t", "model.pretrained=false",
        "train.epochs=2", "train.batch_size=8", "eval.batch_size=16", "optim.lr=0.01",
        "schedule.name=none", f"output.dir={tmp_path / 'runs'}", "output.name=run",
    ]
