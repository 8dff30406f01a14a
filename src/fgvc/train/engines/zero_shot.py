"""``train.engine: zero_shot``: a CLIP-family model classifies by its text tower's idea of each class
(:mod:`fgvc.models.clip_towers`): the image tower and a linear head made from the class prompts
(:mod:`fgvc.models.prompts`). Nothing trains; the training split is not read.

Only the text head is saved (``checkpoints/zero_shot_head.safetensors``): the tower is rebuilt from
``zero_shot``'s weights, so `fgvc eval`, `predict`, `explain` and `export` work on the run folder as on
any run. Images go through the CLIP model's own preprocessing (size, mean, std, interpolation) where
``data.transforms`` leaves it open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.data.transforms import transforms_for
from fgvc.errors import ConfigError
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import TrainedRun
from fgvc.models.clip_towers import (describe_preprocessing, load_clip, save_head,
                                     with_tower_preprocessing, zero_shot_classifier)
from fgvc.models.prompts import TEMPLATE_SETS, resolve_templates
from fgvc.registry import register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.engines.base import Engine
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest

TEMPLATE_FILES = (".txt", ".yaml", ".yml")


@register_engine("zero_shot", settings=("zero_shot",), reports_epochs=False, timm_model=False,
                 model_key="zero_shot.model")
class ZeroShotEngine(Engine):
    """a CLIP image tower and a head from its text tower's class prompts (nothing trains)"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        templates = cfg.zero_shot.templates
        if isinstance(templates, str) and templates not in TEMPLATE_SETS and \
                not templates.lower().endswith(TEMPLATE_FILES):
            raise ValueError(f"zero_shot.templates {templates!r} is not a template set ({', '.join(TEMPLATE_SETS)}) "
                             f"nor a {'/'.join(TEMPLATE_FILES)} file of templates")
        if not isinstance(templates, str):
            try:  # each holds one {}: said now, not after the model is built
                resolve_templates(templates)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None

    def resume_point(self, folder: Optional[RunFolder], which: str) -> Optional[Path]:
        """Nothing trained, nothing to go on from: a resume builds the head again."""
        return None

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        """The CLIP model (weights, tokenizer) and the class head, before any folder is claimed."""
        super().prepare(splits, resume_from)
        clip = load_clip(self.cfg.zero_shot)
        self.source = clip.source
        self.run_cfg = with_tower_preprocessing(self.cfg, clip.preprocess)
        self.classifier = zero_shot_classifier(clip, splits.class_names, self.cfg.zero_shot)

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Fitted:
        cfg, splits, model = self.run_cfg, self.splits, self.classifier
        folder.checkpoints.mkdir(exist_ok=True)
        save_head(model, folder.zero_shot_head_file, self.source)
        # the same transform and call as `fgvc eval` on the loaded run (evaluate.runs.evaluate_split)
        tta = cfg.eval.tta
        transform = TrainedRun(folder.path, cfg, model, splits.class_names, transforms_for(cfg)).tta_transform(tta)
        probabilities = {}
        for name in ("val", "test"):
            images = getattr(splits, name)
            if images is not None and len(images):
                probabilities[name] = predict_probs(model, images, transform, cfg.eval.batch_size,
                                                    num_workers=cfg.data.num_workers, tta=tta)
        total = sum(p.numel() for p in model.parameters())
        head = sum(p.numel() for p in model.head.parameters())
        extra = {"zero_shot": {"clip": self.source, "classes": len(splits.class_names), "head_parameters": head,
                               "preprocessing": describe_preprocessing(cfg)}}
        return Fitted(0, (total, 0), f"open_clip {self.source}", probabilities, extra, tta=tta)
