"""What every engine's run ends with: the shared finish (evaluate, write weights, metrics, predictions,
plots, card and report) and the result a caller gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import write_predictions_csv
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.models.strategies import merge_lora
from fgvc.report.html import finish_run_folder
from fgvc.runfolder import RunFolder


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, Any]:
        return self.metrics.get("test", {})


@dataclass
class Fitted:
    """What an engine's fit hands to the shared finish.

    ``probabilities``: split -> class probabilities (N x C), where the engine predicted the splits
    itself (the probe, from cached features); otherwise the finish evaluates ``best.ckpt``.
    ``extra``: engine-specific entries of metrics.json (the probe's feature-cache hits, its C).
    ``tta``: the test-time views those probabilities averaged (none: the plain view), recorded with the
    predictions so that an ensemble with the same views reads them instead of predicting again.
    """

    epochs: int
    parameters: tuple[int, int]
    weights_report: Any = None
    probabilities: Optional[dict[str, torch.Tensor]] = None
    extra: dict[str, Any] = field(default_factory=dict)
    tta: Sequence[str] = ()


def finish(cfg: ExperimentConfig, folder: RunFolder, splits: DataSplits, fitted: Fitted, train_seconds: float,
           evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """Evaluate the trained model on ``evaluate``'s labelled splits, write the weights, metrics,
    predictions, plots, model card and report; the same for every engine."""
    total, trainable = fitted.parameters
    metrics: dict[str, Any] = {"run_dir": str(folder.path), "seed": cfg.seed, "epochs": fitted.epochs,
                               "parameters": {"total": total, "trainable": trainable},
                               "weights": str(fitted.weights_report) if fitted.weights_report else None,
                               **fitted.extra, "train_seconds": round(train_seconds, 2)}
    if cfg.data.limit_per_class is not None:  # the k-shot draw: its seed, and which images it kept
        folder.write_train_images([splits.train.key(i) for i in range(len(splits.train))])
        metrics["limit_per_class"] = {"per_class": cfg.data.limit_per_class, "seed": cfg.data.limit_draw_seed,
                                      "train_images": len(splits.train)}
    labelled = [s for s in evaluate if getattr(splits, s) is not None and len(getattr(splits, s))
                and getattr(splits, s).is_labelled]
    if fitted.probabilities is None:
        trained = load_trained(folder.path, RunFolder.BEST, weights_file=False)  # the file is written from it
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in merge_lora(trained.model).state_dict().items()}, folder.weights_file)
        for split in labelled:
            metrics[split] = evaluate_split(trained, split, splits=splits)
    else:
        for split in labelled:
            images, probs = getattr(splits, split), fitted.probabilities[split]
            metrics[split] = compute_metrics(probs, torch.as_tensor(images.labels), splits.class_names, cfg.eval.top_k)
            # the run's model (what load_trained builds) made them: an ensemble with these views reads them
            made = {"checkpoint": RunFolder.BEST, "tta": list(fitted.tta)}
            folder.write_metrics({**metrics[split], RunFolder.PREDICTED_WITH: made}, split)
            write_predictions_csv(folder.predictions_file(split), images, probs)
    finish_run_folder(folder.path, metrics, splits.class_names)
    return RunResult(folder.path, metrics)
