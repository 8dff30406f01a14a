"""The experiment config: schema (:mod:`.schema`), generative sections (:mod:`.generative`) and loading
(:mod:`.loading`: YAML, ``--set``, error text). Everything is importable from here."""

from fgvc.config.generative import DiffusionConfig, GanConfig, StableDiffusionConfig
from fgvc.config.loading import apply_overrides, load_config, parse_override, read_yaml, validate_config
from fgvc.config.schema import (
    AUTO_AUGMENT_ALIASES,
    LABEL_CHOICES,
    CsvConfig,
    DataConfig,
    DatasetName,
    EvalConfig,
    ExecutorConfig,
    ExperimentConfig,
    LossConfig,
    MixupConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    PipelineConfig,
    ScheduleConfig,
    StrategyConfig,
    SyntheticConfig,
    TrainConfig,
    TransformConfig,
)
from fgvc.config.section import Section

__all__ = [
    "AUTO_AUGMENT_ALIASES", "LABEL_CHOICES", "CsvConfig", "DataConfig", "DatasetName", "DiffusionConfig",
    "EvalConfig", "ExecutorConfig", "ExperimentConfig", "GanConfig", "LossConfig", "MixupConfig", "ModelConfig", "OptimConfig",
    "OutputConfig", "PipelineConfig", "ScheduleConfig", "Section", "StableDiffusionConfig", "StrategyConfig", "SyntheticConfig",
    "TrainConfig", "TransformConfig", "apply_overrides", "load_config", "parse_override", "read_yaml",
    "validate_config",
]
