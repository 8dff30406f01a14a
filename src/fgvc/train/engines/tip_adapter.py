"""``train.engine: tip_adapter``: Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022) on the CLIP
model the ``zero_shot`` section names (:mod:`fgvc.models.tip_adapter`).

The training images' CLIP features (the mean of ``tip_adapter.views`` augmented views each) become a
key-value cache beside the zero-shot text head. Tip-Adapter trains nothing; with
``tip_adapter.finetune_epochs`` the keys train on the cached features (Tip-Adapter-F). Alpha and beta
are then chosen on the val split. Features are cached like the probe's (keyed by the CLIP weights): the
val and test features are computed once; the augmented views of the k-shot images (``tip_adapter.views``)
depend on the draw, so each new draw or seed computes its own.

Only the head and the cache are saved (``checkpoints/tip_adapter.safetensors``): the tower is rebuilt
from the CLIP weights, so `fgvc eval`, `predict` and `export` work on the run folder as on any run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from fgvc.config import ExperimentConfig, TipAdapterConfig
from fgvc.data import DataSplits
from fgvc.errors import ConfigError
from fgvc.models.clip_probe import clip_fingerprint
from fgvc.models.clip_towers import describe_preprocessing, load_clip, with_tower_preprocessing, zero_shot_classifier
from fgvc.models.tip_adapter import TipAdapter, build_cache, save_tip_adapter, search_alpha_beta
from fgvc.registry import register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.callbacks import write_history
from fgvc.train.engines.base import Engine
from fgvc.train.engines.probe import ProbeFeatures
from fgvc.train.engines.zero_shot import ZeroShotEngine
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest


@register_engine("tip_adapter", settings=("tip_adapter",), reads=("zero_shot",), reports_epochs=False,
                 timm_model=False, model_key="zero_shot.model")
class TipAdapterEngine(Engine):
    """zero-shot CLIP plus a cache of the training images' features (Tip-Adapter; -F: the keys trained)"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        ZeroShotEngine.check_config(cfg)  # the prompts are the zero-shot head's
        if cfg.data.jpeg_decode == "device":
            raise ValueError("data.jpeg_decode: device decodes in the fine-tuning loop; train.engine: tip_adapter "
                             "extracts its features with the workers' decoder; remove data.jpeg_decode")

    def resume_point(self, folder: Optional[RunFolder], which: str) -> Optional[Path]:
        """The cache is built again from the cached features: a resume starts over."""
        return None

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        """The CLIP model and the zero-shot head, before any folder is claimed."""
        super().prepare(splits, resume_from)
        tcfg = self.cfg.tip_adapter
        if tcfg.search and (splits.val is None or not len(splits.val)):
            raise ConfigError("tip_adapter.search chooses alpha and beta on the val split, and this data has none: "
                              "set data.val_fraction > 0 (or data.official_val), or tip_adapter.search: false")
        clip = load_clip(self.cfg.zero_shot)
        self.source = clip.source
        cfg = with_tower_preprocessing(self.cfg, clip.preprocess)
        self.classifier = zero_shot_classifier(clip, splits.class_names, self.cfg.zero_shot)
        self.features = ProbeFeatures(cfg, splits, (self.classifier, f"open_clip {clip.source}"),
                                      clip_fingerprint(self.cfg.zero_shot), views=tcfg.views, runtime="auto")

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Fitted:
        cfg, splits, features, tcfg = self.features.cfg, self.splits, self.features, self.cfg.tip_adapter
        x_train, _ = features.get("train", train_views=True)
        keys, values = build_cache(x_train, torch.as_tensor(splits.train.labels), splits.num_classes)
        model = TipAdapter(self.classifier.visual, self.classifier.head, keys, values, tcfg.alpha, tcfg.beta)
        model.requires_grad_(False)
        evaluated = {n: (features.get(n)[0], torch.as_tensor(getattr(splits, n).labels))
                     for n in ("val", "test") if getattr(splits, n) is not None and len(getattr(splits, n))}
        history = finetune_keys(model, x_train, torch.as_tensor(splits.train.labels), evaluated.get("val"), tcfg,
                                cfg.seed) if tcfg.finetune_epochs else []
        record: dict[str, Any] = {"clip": self.source, "cache_images": len(keys), "views": tcfg.views,
                                  "finetune_epochs": tcfg.finetune_epochs,
                                  "preprocessing": describe_preprocessing(cfg)}
        if history:
            record["finetune_best_epoch"] = next(row["epoch"] for row in history if row.get("chosen"))
        if tcfg.search:
            val_x, val_y = evaluated["val"]
            with torch.no_grad():
                alpha, beta, top1 = search_alpha_beta(model.head(val_x), model.keys(val_x), model.values, val_y,
                                                      tcfg.alpha_grid(), tcfg.beta_grid())
            model.alpha.fill_(alpha)
            model.beta.fill_(beta)
            record["search"] = {"val_top1": round(top1, 6), "alphas": tcfg.alpha_steps, "betas": tcfg.beta_steps}
        record.update(alpha=round(float(model.alpha), 6), beta=round(float(model.beta), 6))  # float32 buffers
        folder.checkpoints.mkdir(exist_ok=True)
        save_tip_adapter(model, folder.tip_adapter_file, self.source)
        if history:
            write_history(folder.history_file, [{k: v for k, v in row.items() if k != "chosen"} for row in history])
        with torch.no_grad():
            probabilities = {split: model.adapt(x).softmax(-1) for split, (x, _) in evaluated.items()}
        total = sum(p.numel() for p in model.parameters())
        trainable = model.keys.weight.numel() if tcfg.finetune_epochs else 0
        extra = {"tip_adapter": record, "feature_cache": features.hits_and_misses}
        return Fitted(tcfg.finetune_epochs, (total, trainable), f"open_clip {self.source}", probabilities, extra)


def finetune_keys(model: TipAdapter, train_x: torch.Tensor, train_y: torch.Tensor,
                  val: Optional[tuple[torch.Tensor, torch.Tensor]], tcfg: TipAdapterConfig, seed: int) -> list[dict]:
    """Tip-Adapter-F: the cache keys trained with cross-entropy on the adapted logits (AdamW, cosine to 0),
    each epoch on one augmented view of every image (the views in turn). The epoch with the best val top-1
    is kept (the authors' code picked it on test); without val, the last. One history row per epoch."""
    generator = torch.Generator().manual_seed(seed)
    views = train_x if train_x.ndim == 3 else train_x[None]
    count, batch = views.shape[1], tcfg.finetune_batch_size
    keys = model.keys.weight
    keys.requires_grad_(True)
    optimizer = torch.optim.AdamW([keys], lr=tcfg.finetune_lr, eps=1e-4)
    steps = tcfg.finetune_epochs * math.ceil(count / batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    history, best = [], (-1.0, 0, keys.detach().clone())
    for epoch in range(tcfg.finetune_epochs):
        x = views[epoch % len(views)]
        order = torch.randperm(count, generator=generator)
        losses = []
        for start in range(0, count, batch):
            rows = order[start:start + batch]
            loss = F.cross_entropy(model.adapt(x[rows]), train_y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        row: dict[str, Any] = {"epoch": epoch, "train/loss": sum(losses) / len(losses),
                               "lr": optimizer.param_groups[0]["lr"]}
        score = float(epoch)  # without val: the last epoch
        if val is not None:
            with torch.no_grad():
                logits = model.adapt(val[0])
            row["val/loss"] = float(F.cross_entropy(logits, val[1]))
            row["val/top1"] = score = float((logits.argmax(-1) == val[1]).float().mean())
        if score > best[0]:
            best = (score, epoch, keys.detach().clone())
        history.append(row)
    keys.requires_grad_(False)
    with torch.no_grad():
        keys.copy_(best[2])
    history[best[1]]["chosen"] = True
    return history
