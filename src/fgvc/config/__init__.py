"""The experiment config, one module per section: data (:mod:`.data`), model and strategy
(:mod:`.model`), fine-grained method (:mod:`.method`), optimizer, schedule and loss (:mod:`.optim`), training engines (:mod:`.train`),
evaluation, output and executor (:mod:`.runs`), generators (:mod:`.generative`), all of them with
the checks across sections (:mod:`.experiment`); loading (:mod:`.loading`: YAML, ``--set``, error
text). Everything is importable from here."""

from fgvc.config.data import AUTO_AUGMENT_ALIASES, CsvConfig, DataConfig, MixupConfig, SyntheticConfig, TransformConfig
from fgvc.config.experiment import ExperimentConfig
from fgvc.config.generative import DiffusionConfig, GanConfig, StableDiffusionConfig
from fgvc.config.loading import apply_overrides, load_config, parse_override, read_yaml, validate_config
from fgvc.config.method import MethodConfig
from fgvc.config.model import ModelConfig, StrategyConfig
from fgvc.config.optim import LossConfig, OptimConfig, ScheduleConfig
from fgvc.config.runs import EvalConfig, ExecutorConfig, OutputConfig
from fgvc.config.section import Section
from fgvc.config.tip_adapter import TipAdapterConfig
from fgvc.config.train import PipelineConfig, ProbeConfig, TrainConfig
from fgvc.config.wise_ft import WiseFtConfig
from fgvc.config.zero_shot import ZeroShotConfig

__all__ = [
    "AUTO_AUGMENT_ALIASES", "CsvConfig", "DataConfig", "DiffusionConfig", "EvalConfig", "ExecutorConfig",
    "ExperimentConfig", "GanConfig", "LossConfig", "MethodConfig", "MixupConfig", "ModelConfig", "OptimConfig", "OutputConfig",
    "PipelineConfig", "ProbeConfig", "ScheduleConfig", "Section", "StableDiffusionConfig", "StrategyConfig",
    "SyntheticConfig", "TipAdapterConfig", "TrainConfig", "TransformConfig", "WiseFtConfig", "ZeroShotConfig", "apply_overrides", "load_config",
    "parse_override", "read_yaml", "validate_config",
]
