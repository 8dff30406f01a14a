"""``fgvc wise-ft RUN``: WiSE-FT on a finished fine-tune of a CLIP tower that started from the zero-shot
text head (``model.head_init: zero_shot``). Each alpha of a grid mixes the zero-shot start and the
fine-tuned weights (:func:`fgvc.models.wise_ft.interpolate_weights`); the alpha with the best val top-1
is kept and written as a normal run folder (config, model.safetensors, metrics, predictions, report,
model card), so eval, predict, explain and export work on it as on the fine-tune."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from fgvc.config import WiseFtConfig
from fgvc.data import load_data
from fgvc.data.readable import as_trained
from fgvc.errors import ConfigError
from fgvc.evaluate.runs import load_trained
from fgvc.models.strategies import count_parameters
from fgvc.runfolder import RunFolder
from fgvc.train.engines.wise_ft import mix_on_val, require_zero_shot_start, zero_shot_start
from fgvc.train.result import Fitted, RunResult, finish
from fgvc.train.run import recorded_run
from fgvc.train.stopping import stop_on_signals

DEFAULT_ALPHAS = tuple(WiseFtConfig().alphas)  # 0, 0.1, ..., 1: the wise_ft engine's default
__all__ = ["DEFAULT_ALPHAS", "wise_ft", "zero_shot_start"]


def wise_ft(run_dir: Path, alphas: Sequence[float] = DEFAULT_ALPHAS, progress: bool = False) -> RunResult:
    """WiSE-FT of the fine-tune in ``run_dir`` over ``alphas``, alpha chosen on val; a new run folder
    ``<run>-wise-ft`` beside it."""
    started = time.perf_counter()
    finetuned = load_trained(Path(run_dir))
    cfg, class_names = finetuned.cfg, finetuned.class_names
    require_zero_shot_start(finetuned)
    if cfg.train.engine == "wise_ft":  # its model.safetensors is an average already
        raise ConfigError(f"{finetuned.run_dir} is a WiSE-FT average already (train.engine: wise_ft); give fgvc "
                          "wise-ft a fine-tune (train.engine: lightning), or train this config again with other "
                          "wise_ft.alphas")
    splits = as_trained(load_data(cfg.data), cfg.data)
    if (splits.val is None or not len(splits.val)) and len(alphas) > 1:
        raise ConfigError(f"{finetuned.run_dir} has no val split to choose alpha on; give one alpha (--alphas 0.5) "
                          "or set data.val_fraction")
    mixed = mix_on_val(finetuned, splits, alphas, print if progress else None)
    source = RunFolder(finetuned.run_dir)
    folder = RunFolder.claim(source.path.with_name(f"{source.path.name}-wise-ft"))
    extra = {"wise_ft": {**mixed.record(), "finetuned_run": str(source.path)}}
    with stop_on_signals() as stop_request, recorded_run(cfg, folder, class_names, stop_request):
        from safetensors.torch import save_file

        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in mixed.state.items()}, str(folder.weights_file))
        fitted = Fitted(0, count_parameters(finetuned.model), None, mixed.probabilities, extra, tta=cfg.eval.tta)
        return finish(cfg, folder, splits, fitted, time.perf_counter() - started)
