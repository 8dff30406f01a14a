"""``train.engine: probe``: the frozen backbone runs once over the data (features cached on disk), then
only a head trains on the cached tensors (:mod:`fgvc.train.probe_head`: a linear layer or small MLP,
or scikit-learn's logistic regression). Repeating many seeds of the head costs a small fraction of
one backbone pass.

Only the head is saved (``checkpoints/probe_head.pt``): the frozen backbone is rebuilt from the
config's weights (the cache key names them), so the run folder is an ordinary one and `fgvc eval`,
`predict`, `ensemble` and `report` work on it as on any run.

``probe.features: clip`` probes the CLIP image tower the ``zero_shot`` section names instead of the
model section's network (:mod:`fgvc.models.clip_probe`): its embedding L2-normalised, its own
preprocessing, the cache keyed by the CLIP model, tag or file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.config.section import changed_keys
from fgvc.data import DataSplits
from fgvc.data.transforms import transforms_for
from fgvc.models.clip_probe import clip_fingerprint, probe_network
from fgvc.models.heads import classifier_name
from fgvc.models.strategies import count_parameters
from fgvc.registry import register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.callbacks import write_history
from fgvc.train.engines.base import Engine
from fgvc.train.feature_cache import FeatureBank, FeatureCache, bank_key, cache_key, extract_features
from fgvc.train.probe_head import PROBE_SCHEDULES, train_head
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest


@register_engine("probe", settings=("probe",), reads=("zero_shot",), strategy="linear", reports_epochs=False)
class ProbeEngine(Engine):
    """a head trained on the frozen backbone's cached features"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        p = cfg.probe
        if cfg.strategy.name != "linear":
            raise ValueError(f"train.engine: probe trains the head alone on frozen features; strategy.name is "
                             f"{cfg.strategy.name}: use strategy.name: linear, or train.engine: lightning")
        if p.standardize and p.head != "logreg":
            raise ValueError("probe.standardize applies to probe.head: logreg only; remove it or use logreg")
        if p.head == "regression" and cfg.loss.name != "ce":
            raise ValueError(f"loss.name {cfg.loss.name!r} cannot be used with probe.head: regression (a ridge "
                             "regression's squared error; loss.class_weights still weigh the images); use loss.name: ce")
        if p.head == "logreg" and cfg.loss.name != "ce":
            raise ValueError(
                f"loss.name {cfg.loss.name!r} cannot be used with probe.head: logreg (scikit-learn's logistic "
                "regression has only its own cross-entropy; loss.class_weights still applies); use loss.name: ce, "
                "or probe.head: linear for a torch head that trains with any loss")
        if cfg.data.jpeg_decode == "device":
            raise ValueError("data.jpeg_decode: device decodes in the fine-tuning loop; train.engine: probe "
                             "extracts its features with the workers' decoder; remove data.jpeg_decode")
        if cfg.schedule.name not in PROBE_SCHEDULES:
            raise ValueError(f"schedule.name {cfg.schedule.name!r} is not supported by train.engine: probe; "
                             f"use one of {list(PROBE_SCHEDULES)}")
        check_clip_features(cfg)

    def resume_point(self, folder: Optional[RunFolder], which: str) -> Optional[Path]:
        """A probe has no epochs to go on from: a resume trains the head again from the cached features."""
        return None

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        """A CLIP tower is built now (its weights fail before a folder is claimed); a model section's
        network only when a feature set is missing from the cache."""
        super().prepare(splits, resume_from)
        self.features = ProbeFeatures(self.cfg, splits)

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Fitted:
        cfg, splits, features = self.features.cfg, self.splits, self.features
        x_train, meta = features.get("train", train_views=True)
        y_train = torch.as_tensor(splits.train.labels)
        evaluated = {n: (features.get(n)[0], torch.as_tensor(getattr(splits, n).labels))
                     for n in ("val", "test") if getattr(splits, n) is not None and len(getattr(splits, n))}
        head, history = train_head(cfg, x_train, y_train, splits.num_classes, evaluated.get("val"))
        folder.checkpoints.mkdir(exist_ok=True)
        torch.save(head.state_dict(), folder.probe_head_file)
        if history:
            write_history(folder.history_file, history)
        with torch.no_grad():
            probabilities = {split: head(x).softmax(-1) for split, (x, _) in evaluated.items()}
        head_params = sum(p.numel() for p in head.parameters())
        extra: dict[str, Any] = {"feature_cache": features.hits_and_misses}
        chosen = [row["probe_c"] for row in history if row.get("chosen")]
        if chosen:
            extra["probe_c"] = chosen[0]
        return Fitted(cfg.train.epochs, (meta["backbone_params"] + head_params, head_params),
                      features.built.get("report"), probabilities, extra)


CLIP_TOWER_KEYS = ("model", "pretrained", "pretrained_file")  # what the probe reads of the zero_shot section


def check_clip_features(cfg: ExperimentConfig) -> None:
    """The zero_shot section names the tower of ``probe.features: clip`` (its prompts are not used); a
    CNN's layer pooling does not apply to it."""
    changed = changed_keys(cfg.zero_shot, type(cfg.zero_shot)())
    if not cfg.probe.clip_features and changed:
        raise ValueError(f"{', '.join(f'zero_shot.{k}' for k in changed)}: the probe reads the zero_shot section "
                         "only for probe.features: clip; set that, or remove them")
    prompts = [k for k in changed if k not in CLIP_TOWER_KEYS]
    if cfg.probe.clip_features and prompts:
        raise ValueError(f"{', '.join(f'zero_shot.{k}' for k in prompts)}: the probe on CLIP features reads the "
                         f"tower alone ({', '.join(f'zero_shot.{k}' for k in CLIP_TOWER_KEYS)}); remove them, or "
                         "train.engine: zero_shot / tip_adapter for the text head")
    if cfg.probe.clip_features and cfg.probe.pooled_layers:
        raise ValueError("probe.layers / pooling / projection pool a CNN's stages; probe.features: clip takes the "
                         "CLIP tower's embedding: remove them")


def _head_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.get_submodule(classifier_name(model)).parameters())


class ProbeFeatures:
    """The backbone's features for a config's splits, from the on-disk cache (computed when missing):
    plain features per image in a bank; ``probe.views`` augmented training views per list.

    ``network``: (model, weights report) to extract with, built already (another engine's CLIP model),
    with ``weights`` its fingerprint for the cache key; by default the probe's network: a CLIP tower is
    built at once (``cfg`` then takes its preprocessing), a model section's when first needed.
    ``views``, ``runtime``: as ``probe.views`` and ``probe.runtime``, which they default to."""

    def __init__(self, cfg: ExperimentConfig, splits: DataSplits, network: Optional[Sequence[Any]] = None,
                 weights: Optional[dict] = None, views: Optional[int] = None, runtime: Optional[str] = None):
        self.built: dict[str, Any] = {}
        if network is None and cfg.probe.clip_features:
            model, cfg, report = probe_network(cfg, splits.num_classes)
            network, weights = (model, report), clip_fingerprint(cfg.zero_shot)
        if network is not None:
            self.built["model"], self.built["report"] = network
        self.cfg, self.splits, self.weights = cfg, splits, weights
        self.views = cfg.probe.views if views is None else views
        self.runtime = runtime or cfg.probe.runtime
        transforms = transforms_for(cfg)
        self.plain, self.augmented = transforms.eval, transforms.train
        self.cache = FeatureCache(Path(cfg.data.cache_dir) / "features")
        self.bank = FeatureBank(Path(cfg.data.cache_dir) / "features")

    def backbone(self) -> nn.Module:  # built only when a feature set is missing from the cache
        if "model" not in self.built:
            self.built["model"], _, self.built["report"] = probe_network(self.cfg, self.splits.num_classes)
        return self.built["model"]

    def get(self, name: str, train_views: bool = False) -> tuple[torch.Tensor, dict]:
        """(features, meta) of split ``name``: (N, D), or (views, N, D) for augmented training views."""
        cfg, images, views = self.cfg, getattr(self.splits, name), self.views
        transform, count = (self.augmented, views) if train_views and views else (self.plain, 0)

        def compute(todo=images):
            model = self.backbone()
            tensor = extract_features(model, todo, transform, cfg.eval.batch_size, cfg.data.num_workers, count,
                                      cfg.data.split_seed, engine=self.runtime)
            return tensor, {"backbone_params": count_parameters(model)[0] - _head_params(model)}

        if count == 0:  # plain features are the image's alone: kept per image, whatever the split
            return self.bank.get_or_compute(bank_key(cfg, transform, self.weights), images, compute)
        key = cache_key(cfg, images, transform, count, cfg.data.split_seed, self.weights)
        return self.cache.get_or_compute(key, compute)

    @property
    def hits_and_misses(self) -> dict[str, int]:
        return {"hits": self.cache.hits + self.bank.hits, "misses": self.cache.misses + self.bank.misses}
