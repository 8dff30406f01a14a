import pytest
import timm
import torch

from fgvc.config import OptimConfig, ScheduleConfig, StrategyConfig
from fgvc.errors import ConfigError
from fgvc.models.strategies import apply_strategy
from fgvc.train.optim import build_optimizer, build_param_groups, build_scheduler, step_timm_scheduler


def model():
    return timm.create_model("resnet10t", pretrained=False, num_classes=3)


def test_no_weight_decay_on_norms_and_biases_and_head_lr_multiplier():
    net = model()
    groups = build_param_groups(net, OptimConfig(lr=0.1, weight_decay=0.05), StrategyConfig(head_lr_mult=10))
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert by_name["bn1.weight"]["weight_decay"] == 0.0
    assert by_name["fc.bias"]["weight_decay"] == 0.0
    assert by_name["conv1.0.weight"]["weight_decay"] == 0.05
    assert by_name["fc.weight"]["lr"] == pytest.approx(1.0) and by_name["conv1.0.weight"]["lr"] == pytest.approx(0.1)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_layer_decay_scales_lower_layers_down():
    net = model()
    groups = build_param_groups(net, OptimConfig(lr=1.0), StrategyConfig(layer_decay=0.5))
    by_name = {n: g["lr"] for g in groups for n in g["param_names"]}
    assert by_name["fc.weight"] == 1.0
    assert by_name["layer4.0.conv1.weight"] > by_name["layer1.0.conv1.weight"] > by_name["conv1.0.weight"] > 0


def test_frozen_parameters_are_left_out_unless_gradual():
    net = apply_strategy(model(), StrategyConfig(name="linear"))
    groups = build_param_groups(net, OptimConfig(weight_decay=0.05), StrategyConfig())
    # the head only, in the model's order: its weight (decayed), then its bias (not decayed)
    assert [(n, g["weight_decay"]) for g in groups for n in g["param_names"]] == [("fc.weight", 0.05),
                                                                                   ("fc.bias", 0.0)]
    everything = build_param_groups(net, OptimConfig(), StrategyConfig(), include_frozen=True)
    assert sum(len(g["params"]) for g in everything) == len(list(net.parameters()))


@pytest.mark.parametrize("name,cls,extra", [("sgd", torch.optim.SGD, {"nesterov": False}),
                                             ("adamw", torch.optim.AdamW, {}), ("adam", torch.optim.Adam, {})])
def test_optimizers(name, cls, extra):
    optimizer = build_optimizer(build_param_groups(model(), OptimConfig(name=name, lr=0.1), StrategyConfig()),
                                OptimConfig(name=name, lr=0.1))
    assert isinstance(optimizer, cls)
    for key, value in extra.items():
        assert optimizer.param_groups[0][key] == value
    nesterov = build_optimizer(build_param_groups(model(), OptimConfig(), StrategyConfig()),
                               OptimConfig(name="sgd", nesterov=True))
    assert nesterov.param_groups[0]["nesterov"] is True


def test_any_timm_optimizer_and_unknown_name():
    groups = build_param_groups(model(), OptimConfig(), StrategyConfig())
    assert type(build_optimizer(groups, OptimConfig(name="lamb"))).__name__ == "Lamb"
    with pytest.raises(ConfigError, match="optim.name 'sgdd'"):
        build_optimizer(build_param_groups(model(), OptimConfig(), StrategyConfig()), OptimConfig(name="sgdd"))


def _lrs(schedule: ScheduleConfig, epochs=4, steps=5):
    net = model()
    optimizer = build_optimizer(build_param_groups(net, OptimConfig(lr=1.0), StrategyConfig()), OptimConfig(lr=1.0))
    config = build_scheduler(optimizer, schedule, epochs, steps, "val/top1")
    scheduler, interval = config["scheduler"], config["interval"]
    lrs = [optimizer.param_groups[0]["lr"]]
    for step in range(1, epochs * steps + 1):
        optimizer.step()
        if isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            scheduler.step()
        elif interval == "step":
            step_timm_scheduler(scheduler, "step", step, step // steps)
        else:  # as Classifier does: the per-step part (plateau's warmup) every step, the rest per epoch
            step_timm_scheduler(scheduler, "step", step, step // steps)
            if step % steps == 0:
                step_timm_scheduler(scheduler, "epoch", step, step // steps - 1, metric=0.5)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_with_warmup_rises_then_decays_to_min():
    lrs = _lrs(ScheduleConfig(name="cosine", warmup_epochs=1, warmup_lr_init=0.01, min_lr=0.001))
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1] < lrs[3] < lrs[5]  # warming up over the first epoch (5 steps)
    assert max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert lrs[-1] == pytest.approx(0.001, abs=0.02)


def test_step_multistep_restarts_plateau_onecycle():
    step = _lrs(ScheduleConfig(name="step", step_size=2, gamma=0.1))
    assert step[1] == pytest.approx(1.0) and step[-2] == pytest.approx(0.1)
    multi = _lrs(ScheduleConfig(name="multistep", milestones=[1, 3], gamma=0.5))
    assert multi[3] == pytest.approx(1.0) and multi[7] == pytest.approx(0.5) and multi[-2] == pytest.approx(0.25)
    restarts = _lrs(ScheduleConfig(name="cosine_restarts", restart_epochs=2), epochs=4)
    assert restarts[9] < 0.1 and restarts[10] == pytest.approx(1.0)  # restart after 2 epochs (10 steps)
    plateau = _lrs(ScheduleConfig(name="plateau", patience=0, gamma=0.5), epochs=4)
    assert plateau[-1] < 1.0  # constant metric: no improvement, lr reduced
    warm = _lrs(ScheduleConfig(name="plateau", patience=1, gamma=0.5, warmup_epochs=0.5, warmup_lr_init=0.0),
                epochs=4, steps=4)  # half an epoch of warmup = 2 steps, then the base lr until the plateau cuts it
    assert warm[:4] == pytest.approx([0.0, 0.5, 1.0, 1.0]) and warm[8] == pytest.approx(1.0)
    assert warm[-1] == pytest.approx(0.5)
    onecycle = _lrs(ScheduleConfig(name="onecycle", warmup_epochs=1), epochs=4)
    assert onecycle[0] < 0.1 and max(onecycle) == pytest.approx(1.0, rel=1e-2) and min(onecycle[-3:]) < 0.01


def test_a_restored_plateau_scheduler_counts_the_epochs_that_did_not_improve():
    def plateau():
        optimizer = torch.optim.SGD(model().parameters(), lr=1.0)
        config = build_scheduler(optimizer, ScheduleConfig(name="plateau", patience=2, gamma=0.5), 10, 5, "val/loss")
        return optimizer, config["scheduler"]

    optimizer, scheduler = plateau()
    for epoch, loss in enumerate([1.0, 1.0, 1.0]):  # one best epoch, then two that did not improve
        step_timm_scheduler(scheduler, "epoch", 0, epoch, metric=loss)
    restored_optimizer, restored = plateau()
    restored_optimizer.load_state_dict(optimizer.state_dict())
    restored.load_state_dict(scheduler.state_dict())
    for sched, opt in ((scheduler, optimizer), (restored, restored_optimizer)):
        step_timm_scheduler(sched, "epoch", 0, 3, metric=1.0)  # the third: patience 2 is used up
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_a_run_on_the_plateau_schedule_warms_up_within_the_first_epoch(tiny_overrides):
    from builders import history_rows

    from fgvc.config import load_config
    from fgvc.train.run import train

    result = train(load_config(None, tiny_overrides + [
        "schedule.name=plateau", "schedule.warmup_epochs=0.5", "schedule.warmup_lr_init=0.000001"]), progress=False)
    assert [float(row["lr"]) for row in history_rows(result.run_dir)] == pytest.approx([0.01, 0.01])
