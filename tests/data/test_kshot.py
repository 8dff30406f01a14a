"""k-shot draws (data.limit_per_class): seeded by the run's seed unless data.limit_seed, so a repeat over
seeds draws other images each time, and one seed draws the same ones again."""

from fgvc.config import DataConfig, load_config
from fgvc.data import load_data
from fgvc.experiments.groups import member_config


def _kept(cfg) -> list[str]:
    train = load_data(cfg.data).train
    return [train.key(i) for i in range(len(train))]


def test_the_draw_follows_the_run_seed_and_repeats_for_one_seed(tiny_overrides):
    shots = tiny_overrides + ["data.limit_per_class=2"]
    seed_1 = _kept(load_config(None, shots + ["seed=1"]))
    assert len(seed_1) == 6  # 3 classes x 2 shots
    assert _kept(load_config(None, shots + ["seed=1"])) == seed_1
    assert _kept(load_config(None, shots + ["seed=2"])) != seed_1
    # an explicit data.limit_seed fixes the draw whatever the run's seed
    pinned = ["data.limit_seed=7"]
    assert _kept(load_config(None, shots + pinned + ["seed=1"])) == _kept(load_config(None, shots + pinned + ["seed=2"]))


def test_a_repeat_member_draws_with_its_own_seed(tiny_overrides):
    base = load_config(None, tiny_overrides + ["data.limit_per_class=2", "seed=1"])
    member = member_config(base, ["seed=5"])  # how `fgvc repeat` makes seed-5 from the config
    assert member.data.limit_draw_seed == 5 and "limit_seed: null" in member.to_yaml()
    assert _kept(member) == _kept(load_config(None, tiny_overrides + ["data.limit_per_class=2", "seed=5"]))


def test_a_data_section_alone_draws_with_the_split_seed():
    assert DataConfig(split_seed=3, limit_per_class=2).limit_draw_seed == 3
    assert DataConfig(split_seed=3, limit_per_class=2, limit_seed=9).limit_draw_seed == 9
