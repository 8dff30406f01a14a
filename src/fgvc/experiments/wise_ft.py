"""``fgvc wise-ft RUN``: WiSE-FT on a finished fine-tune of a CLIP tower that started from the zero-shot
text head (``model.head_init: zero_shot``). Each alpha of a grid mixes the zero-shot start and the
fine-tuned weights (:func:`fgvc.models.wise_ft.interpolate_weights`); the alpha with the best val top-1
is kept and written as a normal run folder (config, model.safetensors, metrics, predictions, report,
model card), so eval, predict, explain and export work on it as on the fine-tune."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch

from fgvc.data import load_data
from fgvc.data.readable import as_trained
from fgvc.errors import ConfigError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import TrainedRun, load_trained
from fgvc.models.assembly import build_network
from fgvc.models.strategies import count_parameters, merge_lora
from fgvc.models.wise_ft import best_alpha, interpolate_weights
from fgvc.runfolder import RunFolder
from fgvc.train.result import Fitted, RunResult, finish
from fgvc.train.run import recorded_run
from fgvc.train.stopping import stop_on_signals

DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


def zero_shot_start(run: TrainedRun) -> dict[str, torch.Tensor]:
    """The weights the fine-tune started from: its CLIP tower and the zero-shot text head, rebuilt from
    the run's config (the tower's weights file or hub cache, the zero_shot section's CLIP model)."""
    cfg = run.cfg
    if cfg.model.head_init != "zero_shot":
        raise ConfigError(f"{run.run_dir}: WiSE-FT averages a fine-tune with the zero-shot model it started from, "
                          f"but this run's head started from model.head_init: {cfg.model.head_init}; fine-tune a "
                          "CLIP tower with model.head_init: zero_shot (docs: guide/zero_shot.md)")
    model, _ = build_network(cfg, len(run.class_names), pretrained=True, class_names=run.class_names)
    return {k: v.detach().clone() for k, v in merge_lora(model).state_dict().items()}


def wise_ft(run_dir: Path, alphas: Sequence[float] = DEFAULT_ALPHAS, progress: bool = False) -> RunResult:
    """WiSE-FT of the fine-tune in ``run_dir`` over ``alphas``, alpha chosen on val; a new run folder
    ``<run>-wise-ft`` beside it."""
    started = time.perf_counter()
    finetuned = load_trained(Path(run_dir))
    cfg, class_names, model = finetuned.cfg, finetuned.class_names, finetuned.model
    theta_zero_shot = zero_shot_start(finetuned)
    theta_finetuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    splits = as_trained(load_data(cfg.data), cfg.data)
    if (splits.val is None or not len(splits.val)) and len(alphas) > 1:
        raise ConfigError(f"{finetuned.run_dir} has no val split to choose alpha on; give one alpha (--alphas 0.5) "
                          "or set data.val_fraction")
    transform, tta = finetuned.tta_transform(cfg.eval.tta), cfg.eval.tta

    def probabilities(split: str) -> torch.Tensor:
        return predict_probs(model.eval(), getattr(splits, split), transform, cfg.eval.batch_size,
                             num_workers=cfg.data.num_workers, tta=tta)

    scores: dict[float, float] = {}
    for alpha in alphas:
        if len(alphas) == 1:
            break
        model.load_state_dict(interpolate_weights(theta_zero_shot, theta_finetuned, alpha))
        probs = probabilities("val")
        scores[alpha] = compute_metrics(probs, torch.as_tensor(splits.val.labels), class_names, 1)["top1"]
        if progress:
            print(f"alpha {alpha:.2f}: val top1 {scores[alpha]:.4f}")
    alpha = best_alpha(scores, alphas) if scores else alphas[0]
    state = interpolate_weights(theta_zero_shot, theta_finetuned, alpha)
    model.load_state_dict(state)
    chosen = {split: probabilities(split) for split in ("val", "test")
              if getattr(splits, split) is not None and len(getattr(splits, split))}
    source = RunFolder(finetuned.run_dir)
    folder = RunFolder.claim(source.path.with_name(f"{source.path.name}-wise-ft"))
    extra = {"wise_ft": {"alpha": alpha, "val_top1_by_alpha": {f"{a:g}": s for a, s in scores.items()},
                         "finetuned_run": str(source.path), "zero_shot": cfg.zero_shot.model,
                         "note": "alpha chosen on val: the val metrics are optimistic, test is not"}}
    with stop_on_signals() as stop_request, recorded_run(cfg, folder, class_names, stop_request):
        from safetensors.torch import save_file

        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder.weights_file))
        fitted = Fitted(0, count_parameters(model), None, chosen, extra)
        return finish(cfg, folder, splits, fitted, time.perf_counter() - started)
