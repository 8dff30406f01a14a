"""One experiment: every section together, the checks that span sections, and the old keys that are
still read (:mod:`.aliases`). A training engine's own conflicts are checked by the engine
(``check_config`` of the registered engine), so a new engine brings its rules along."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from fgvc.config.aliases import resolve_old_keys
from fgvc.config.data import DataConfig
from fgvc.config.generative import DiffusionConfig, GanConfig, StableDiffusionConfig
from fgvc.config.method import MethodConfig
from fgvc.config.model import ModelConfig, StrategyConfig
from fgvc.config.optim import LossConfig, OptimConfig, ScheduleConfig
from fgvc.config.runs import EvalConfig, ExecutorConfig, OutputConfig
from fgvc.config.section import Section, changed_keys
from fgvc.config.tip_adapter import TipAdapterConfig
from fgvc.config.train import ProbeConfig, TrainConfig, reported_metrics
from fgvc.config.wise_ft import WiseFtConfig
from fgvc.config.zero_shot import ZeroShotConfig
from fgvc.registry import ENGINES, METHODS


class ExperimentConfig(Section):
    """One experiment: what data, which model, how it is trained and evaluated, where it is written."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    zero_shot: ZeroShotConfig = Field(default_factory=ZeroShotConfig)
    tip_adapter: TipAdapterConfig = Field(default_factory=TipAdapterConfig)
    wise_ft: WiseFtConfig = Field(default_factory=WiseFtConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    gan: GanConfig = Field(default_factory=GanConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    stable_diffusion: StableDiffusionConfig = Field(default_factory=StableDiffusionConfig)
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, raw: Any) -> Any:
        raw = resolve_old_keys(raw)
        if isinstance(raw, dict) and isinstance(raw.get("train"), dict) and raw["train"].get("engine"):
            # an engine's default strategy: the probe trains the head alone (strategy.name: linear)
            default = ENGINES.info(str(raw["train"]["engine"])).get("strategy")
            strategy = raw.setdefault("strategy", {})
            if default and isinstance(strategy, dict) and "name" not in strategy:
                strategy["name"] = default
        return raw

    @model_validator(mode="after")
    def _run_seed_to_data(self) -> "ExperimentConfig":
        self.data._run_seed = self.seed  # the k-shot draw (data.limit_per_class) follows the run's seed
        return self

    @model_validator(mode="after")
    def _warmup_fits(self) -> "ExperimentConfig":
        if self.schedule.warmup_epochs and self.schedule.warmup_epochs >= self.train.epochs:
            raise ValueError(
                f"schedule.warmup_epochs ({self.schedule.warmup_epochs}) must be less than train.epochs "
                f"({self.train.epochs}): the warmup would take the whole run; lower it or train longer"
            )
        return self

    @model_validator(mode="after")
    def _monitor_is_reported(self) -> "ExperimentConfig":
        known = reported_metrics(self.eval.top_k)
        if self.train.monitor not in known:
            close = difflib.get_close_matches(self.train.monitor, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"train.monitor {self.train.monitor!r} is not a metric a run reports{hint}; "
                             f"choose one of: {', '.join(known)}")
        return self

    @model_validator(mode="after")
    def _crop_fits_model(self) -> "ExperimentConfig":
        size, crop = self.model.img_size, self.data.transforms.crop
        if size is not None and size != crop:
            raise ValueError(f"model.img_size ({size}) differs from data.transforms.crop ({crop}): the network is "
                             f"built for {size} px inputs and is fed {crop} px crops; remove model.img_size (the network is then "
                             "built at the crop size) or set both to the same size")
        return self

    @model_validator(mode="after")
    def _engine_fits(self) -> "ExperimentConfig":
        """Settings that only another engine reads are refused (they would be ignored), then the engine
        checks what it cannot combine with."""
        engine = self.train.engine
        used = {*ENGINES.info(engine).get("settings", ()), *ENGINES.info(engine).get("reads", ())}
        if self.model.head_init == "zero_shot":  # a fine-tune's head made by the zero_shot section's text tower
            used.add("zero_shot")
        for other in ENGINES.names():
            for section in ENGINES.info(other).get("settings", ()) if other != engine else ():
                if section in used:  # another engine's section that this one reads too (zero_shot's tower)
                    continue
                default = type(self).model_fields[section].default_factory()
                if getattr(self, section) != default:
                    changed = changed_keys(getattr(self, section), default)
                    raise ValueError(f"{', '.join(f'{section}.{k}' for k in changed)}: settings of "
                                     f"train.engine: {other}, which this config does not use (train.engine: "
                                     f"{engine}); remove them (--set {section}={{}} resets the section) or set train.engine: {other}")
        ENGINES.get(engine).check_config(self)
        return self

    @model_validator(mode="after")
    def _method_fits(self) -> "ExperimentConfig":
        """A fine-grained method is built and trained by the lightning engine; a method that needs hard
        labels refuses mixup (as does the Pairwise Confusion term, which pairs different classes)."""
        method, engine = self.method.name, self.train.engine
        if method != "plain" and engine != "lightning":
            hint = (" (second-order features on the probe: probe.pooling: [cov] with probe.projection: 96)"
                    if engine == "probe" else "")
            raise ValueError(f"method.name: {method} trains with train.engine: lightning; this config uses "
                             f"train.engine: {engine}{hint}; set method.name: plain or train.engine: lightning")
        head_init = self.model.head_init
        if head_init != "random" and not ENGINES.info(engine).get("head_init"):
            raise ValueError(f"model.head_init: {head_init} starts the head of a network train.engine: {engine} does "
                             "not build that way; use train.engine: lightning or model.head_init: random")
        if head_init != "random" and method != "plain":
            raise ValueError(f"model.head_init: {head_init} starts the plain classifier, which method.name: {method} "
                             "replaces; use one of them")
        if self.data.mixup.enabled and not METHODS.info(method).get("mixup", True):
            raise ValueError(f"method.name: {method} needs each image's own label, which data.mixup blends; "
                             "turn mixup off (data.mixup.prob: 0) or use another method")
        if self.data.mixup.enabled and self.loss.confusion:
            raise ValueError("loss.confusion pairs images of different classes, which data.mixup blends; turn "
                             "one of them off (loss.confusion: 0 or data.mixup.prob: 0)")
        return self

    @property
    def run_dir(self) -> Path:
        """The run folder: output.dir / output.name."""
        return Path(self.output.dir).expanduser() / (self.output.name or "run")

    def to_yaml(self) -> str:
        """The resolved config as YAML (paths as strings, tuples as lists)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

