"""``train.engine: wise_ft``: WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR
2022) as one run. A CLIP tower is fine-tuned from the zero-shot text head (``model.head_init:
zero_shot``) exactly as the lightning engine does it; then every mixing weight of ``wise_ft.alphas``
averages the fine-tune with its start (:func:`fgvc.models.wise_ft.interpolate_weights`), and the one
with the best val top-1 is the run's model (``checkpoints/model.safetensors``; ``best.ckpt`` stays the
fine-tune's). As a run it is an arm of a study, a member of a repeat, a job for the Ray executor.

``fgvc wise-ft RUN`` does the second half on a fine-tune that is already on disk (:func:`mix_on_val`
serves both)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.errors import ConfigError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import TrainedRun, load_trained
from fgvc.models.assembly import build_network
from fgvc.models.strategies import merge_lora
from fgvc.models.wise_ft import best_alpha, interpolate_weights
from fgvc.registry import register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.engines.lightning import LightningEngine
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest


@register_engine("wise_ft", settings=("wise_ft",), reads=("zero_shot",), reports_epochs=True, head_init=True)
class WiseFtEngine(LightningEngine):
    """a fine-tune from the zero-shot head, then its weight average with that start, alpha chosen on val"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        if cfg.model.head_init != "zero_shot":
            raise ValueError(f"train.engine: wise_ft averages a fine-tune with the zero-shot model it starts from, "
                             f"but model.head_init is {cfg.model.head_init}; set model.head_init: zero_shot (a timm "
                             "CLIP tower and the zero_shot section's CLIP; docs: guide/zero_shot.md)")

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        if len(self.cfg.wise_ft.alphas) > 1 and (splits.val is None or not len(splits.val)):
            raise ConfigError("train.engine: wise_ft chooses its mixing weight on the val split, and this data has "
                              "none: set data.val_fraction > 0 (or data.official_val), or give one wise_ft.alphas")
        super().prepare(splits, resume_from)
        # the zero-shot start, kept before training moves it, so the mix need not build the network (and
        # encode the prompts) again; a resumed run, or a LoRA one (its keys merge only after), rebuilds it
        self.start = None if resume_from is not None or hasattr(self.model, "merge_and_unload") else {
            k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Optional[Fitted]:
        fitted = super().fit(folder, stop_request, resume_from)
        if fitted is None:  # a DDP rank other than 0
            return None
        finetuned = load_trained(folder.path, RunFolder.BEST, weights_file=False)
        mixed = mix_on_val(finetuned, self.splits, self.cfg.wise_ft.alphas, start=self.start)
        self.start = None
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in mixed.state.items()}, str(folder.weights_file))
        record = {**mixed.record(), "finetuned_weights": f"{RunFolder.CHECKPOINTS}/{RunFolder.BEST}.ckpt"}
        return Fitted(fitted.epochs, fitted.parameters, fitted.weights_report, mixed.probabilities,
                      {**fitted.extra, "wise_ft": record}, tta=self.cfg.eval.tta)


def zero_shot_start(run: TrainedRun) -> dict[str, torch.Tensor]:
    """The weights the fine-tune started from: its CLIP tower and the zero-shot text head, rebuilt from
    the run's config (the tower's weights file or hub cache, the zero_shot section's CLIP model)."""
    require_zero_shot_start(run)
    model, _ = build_network(run.cfg, len(run.class_names), pretrained=True, class_names=run.class_names)
    return {k: v.detach().clone() for k, v in merge_lora(model).state_dict().items()}


def require_zero_shot_start(run: TrainedRun) -> None:
    """One line unless ``run`` is a fine-tune that started from the zero-shot head."""
    if run.cfg.model.head_init != "zero_shot":
        raise ConfigError(f"{run.run_dir}: WiSE-FT averages a fine-tune with the zero-shot model it started from, "
                          f"but this run's head started from model.head_init: {run.cfg.model.head_init}; fine-tune "
                          "a CLIP tower with model.head_init: zero_shot (docs: guide/zero_shot.md)")


class Mixed:
    """The chosen average: its alpha, the val top-1 of every alpha tried, its weights and its
    probabilities on val and test."""

    def __init__(self, alpha: float, scores: dict[float, float], state: dict[str, torch.Tensor],
                 probabilities: dict[str, torch.Tensor], zero_shot: str):
        self.alpha, self.scores, self.state, self.probabilities, self.zero_shot = (
            alpha, scores, state, probabilities, zero_shot)

    def record(self) -> dict:
        """The metrics.json entry."""
        return {"alpha": self.alpha, "val_top1_by_alpha": {f"{a:g}": s for a, s in self.scores.items()},
                "zero_shot": self.zero_shot, "note": "alpha chosen on val: the val metrics are optimistic, test is not"}


def mix_on_val(finetuned: TrainedRun, splits: DataSplits, alphas: Sequence[float],
               log: Optional[Callable[[str], None]] = None, start: Optional[dict[str, torch.Tensor]] = None) -> Mixed:
    """WiSE-FT of ``finetuned`` over ``alphas``: each average scored on val top-1 (one alpha: no scoring),
    the best kept (ties to the smaller alpha), its probabilities on the labelled val and test splits.
    ``start``: the zero-shot weights the fine-tune started from (default: rebuilt from its config)."""
    # LoRA merged into the weights, as in the zero-shot start (a checkpoint keeps the adapters apart);
    # the run's model is mixed in place
    cfg, model = finetuned.cfg, merge_lora(finetuned.model)
    theta_zero_shot = start if start is not None else zero_shot_start(finetuned)
    theta_finetuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    transform, tta = finetuned.tta_transform(cfg.eval.tta), cfg.eval.tta

    def probabilities(split: str) -> torch.Tensor:
        return predict_probs(model.eval(), getattr(splits, split), transform, cfg.eval.batch_size,
                             num_workers=cfg.data.num_workers, tta=tta)

    scores: dict[float, float] = {}
    for alpha in alphas if len(alphas) > 1 else ():
        model.load_state_dict(interpolate_weights(theta_zero_shot, theta_finetuned, alpha))
        scores[alpha] = compute_metrics(probabilities("val"), torch.as_tensor(splits.val.labels),
                                        finetuned.class_names, 1)["top1"]
        if log:
            log(f"alpha {alpha:.2f}: val top1 {scores[alpha]:.4f}")
    alpha = best_alpha(scores, alphas) if scores else alphas[0]
    state = interpolate_weights(theta_zero_shot, theta_finetuned, alpha)
    model.load_state_dict(state)
    chosen = {split: probabilities(split) for split in ("val", "test")
              if getattr(splits, split) is not None and len(getattr(splits, split))
              and getattr(splits, split).is_labelled}
    return Mixed(alpha, scores, state, chosen, cfg.zero_shot.model)
