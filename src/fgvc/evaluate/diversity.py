"""How different ensemble members are: an ensemble helps when its members are good *and* different
(their errors fall on different images)."""

from __future__ import annotations

from itertools import combinations
from typing import Optional, Sequence

import numpy as np
import torch


def diversity(predicted: Sequence[torch.Tensor], targets: torch.Tensor) -> dict[str, Optional[float]]:
    """Mean over member pairs of the disagreement (share of images the two predict differently) and of
    the error correlation (Pearson correlation of the two members' 0/1 error indicators; pairs where a
    member makes no error, or errs everywhere, are left out). None with fewer than two members."""
    if len(predicted) < 2:
        return {"pairs": 0, "disagreement": None, "error_correlation": None}
    preds = [p.cpu().numpy() for p in predicted]
    errors = [(p != targets.cpu().numpy()).astype(float) for p in preds]
    disagreement, correlation = [], []
    for i, j in combinations(range(len(preds)), 2):
        disagreement.append(float((preds[i] != preds[j]).mean()))
        if errors[i].std() > 0 and errors[j].std() > 0:
            correlation.append(float(np.corrcoef(errors[i], errors[j])[0, 1]))
    return {"pairs": len(disagreement), "disagreement": float(np.mean(disagreement)),
            "error_correlation": float(np.mean(correlation)) if correlation else None}
