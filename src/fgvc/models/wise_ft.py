"""WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022): the weight-space
average of a zero-shot model and its fine-tune, theta = (1 - alpha) * theta_zero_shot + alpha *
theta_finetuned, with alpha chosen on held-out data. Both ends must be one architecture: in fgvc the
zero-shot model is the fine-tune's own start, a timm CLIP tower with the zero-shot text head
(``model.head_init: zero_shot``), so every tensor, the head's included, has a partner."""

from __future__ import annotations

from typing import Sequence

import torch

from fgvc.errors import CheckpointError, ConfigError


def interpolate_weights(zero_shot: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * zero_shot + alpha * finetuned for every floating tensor (alpha 0 and 1 give the ends
    exactly: torch.lerp computes from the nearer end); counters and other integer buffers come from the
    fine-tune."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"WiSE-FT alpha {alpha} is outside [0, 1]")
    missing = sorted(set(zero_shot) ^ set(finetuned))
    if missing:
        raise CheckpointError(f"WiSE-FT needs two networks of one architecture; tensors in only one of them: "
                              f"{missing[:5]}")
    mixed = {}
    for key, tuned in finetuned.items():
        start = zero_shot[key]
        if start.shape != tuned.shape:
            raise CheckpointError(f"WiSE-FT: {key} is {tuple(start.shape)} in the zero-shot model, "
                                  f"{tuple(tuned.shape)} in the fine-tune; they must be one architecture")
        if tuned.is_floating_point():
            mixed[key] = torch.lerp(start.to(tuned.dtype), tuned, alpha)
        else:
            mixed[key] = tuned.clone()
    return mixed


def parse_alphas(text: str) -> list[float]:
    """``0,0.1,...,1`` -> [0.0, 0.1, ..., 1.0]; ``0:1:0.1`` (start:stop:step, stop included) the same."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError("a start:stop:step range needs start <= stop and a step above 0")
            count = round((stop - start) / step) + 1
            alphas = [round(start + i * step, 10) for i in range(count)]
        else:
            alphas = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--alphas {text!r}: give numbers in [0, 1] separated by commas, or start:stop:step") from None
    bad = [a for a in alphas if not 0.0 <= a <= 1.0]
    if not alphas or bad:
        raise ConfigError(f"--alphas {text!r}: every mixing weight must be in [0, 1]" + (f" (not {bad[0]})" if bad else ""))
    return sorted(set(alphas))


def best_alpha(scores: dict[float, float], alphas: Sequence[float]) -> float:
    """The alpha of the highest val score; ties go to the one nearer the zero-shot end (smaller alpha),
    the more robust choice the paper argues for."""
    return max(alphas, key=lambda a: (scores[a], -a))
