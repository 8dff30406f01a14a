"""Tip-Adapter (Zhang et al., ECCV 2022, "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
Classification"): zero-shot CLIP plus a key-value cache of the few labelled images.

The keys are the training images' L2-normalised CLIP features, the values their one-hot labels. A
new image's normalised feature f is compared with every key; each training image votes for its class
with weight exp(-beta * (1 - cosine)), so close neighbours count and far ones fade (beta: how fast):

    logits = clip_logits(f) + alpha * exp(-beta * (1 - f @ keys.T)) @ values

Tip-Adapter-F trains the keys (a linear layer initialised from the cache) a few epochs; alpha and beta
are chosen on val either way. :class:`TipAdapter` is the image tower, the zero-shot text head and the
cache as one module, ``forward(images) -> logits``, so eval, predict and ONNX export see a classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.errors import CheckpointError
from fgvc.models.clip_towers import load_clip, with_tower_preprocessing

TOWER_PREFIX = "visual."  # the tower's tensors are not saved: they come from the CLIP weights


def cache_logits(features: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """The cache's votes: exp(-beta * (1 - features @ keys.T)) @ values, features and keys normalised."""
    return torch.exp(-beta * (1 - features @ keys.T)) @ values


def build_cache(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of the training images: features (N, D), or (V, N, D) augmented views whose mean is
    the key (the paper averages 10); keys normalised, values one-hot (N, C)."""
    if features.ndim == 3:
        features = features.mean(0)
    keys = F.normalize(features.float(), dim=-1)
    values = F.one_hot(torch.as_tensor(labels, dtype=torch.long), num_classes).float()
    return keys, values


class TipAdapter(nn.Module):
    """Image tower -> normalised feature -> zero-shot logits + alpha * the cache's votes."""

    fgvc_classifier = "head"  # the zero-shot text head: what models.heads.classifier_name finds

    def __init__(self, visual: nn.Module, head: nn.Linear, keys: torch.Tensor, values: torch.Tensor,
                 alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        self.visual, self.head = visual, head
        # the keys as a linear layer (one output per training image): Tip-Adapter-F trains its weight
        self.keys = nn.Linear(keys.shape[1], keys.shape[0], bias=False)
        with torch.no_grad():
            self.keys.weight.copy_(keys)
        self.register_buffer("values", values.float())
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.register_buffer("beta", torch.tensor(float(beta)))

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """The logits of normalised image features (the cached-feature path the engine trains and searches on)."""
        votes = torch.exp(-self.beta * (1 - self.keys(features))) @ self.values
        return self.head(features) + self.alpha * votes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.adapt(F.normalize(self.visual(images), dim=-1))


def search_alpha_beta(clip_logits: torch.Tensor, affinity: torch.Tensor, values: torch.Tensor,
                      labels: torch.Tensor, alphas: Sequence[float], betas: Sequence[float]) -> tuple[float, float, float]:
    """(alpha, beta, top-1) with the best top-1 of ``labels`` over the grid (the first on ties, betas outer
    as in the authors' search). ``affinity``: features @ keys.T of the images searched on."""
    labels = torch.as_tensor(labels)
    weights = torch.tensor(list(alphas), dtype=clip_logits.dtype)[:, None, None]
    best = (float(alphas[0]), float(betas[0]), -1.0)
    with torch.no_grad():
        for beta in betas:
            votes = torch.exp(-beta * (1 - affinity)) @ values
            top1 = ((clip_logits + weights * votes).argmax(-1) == labels).float().mean(-1)  # one per alpha
            i = int(top1.argmax())
            if float(top1[i]) > best[2]:
                best = (float(alphas[i]), float(beta), float(top1[i]))
    return best


def save_tip_adapter(model: TipAdapter, path: Path, source: str) -> Path:
    """Head, keys, values, alpha and beta (safetensors: plain tensors); the tower is rebuilt from the weights."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(TOWER_PREFIX)}
    save_file(state, str(path), metadata={"clip": source})
    return Path(path)


def load_tip_adapter(cfg: ExperimentConfig, path: Path, num_classes: int) -> tuple[TipAdapter, ExperimentConfig]:
    """A Tip-Adapter run's model (the tower rebuilt from ``cfg.zero_shot``'s weights, the saved head and
    cache on it) and ``cfg`` with the tower's preprocessing."""
    from safetensors.torch import load_file

    again = "run the tip_adapter engine again"
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - truncated or not a safetensors file
        raise CheckpointError(f"Tip-Adapter cache {path} is unreadable ({_first_line(exc)}); {again}") from None
    shapes = {k: state[k].shape for k in ("head.weight", "keys.weight", "values") if k in state}
    if len(shapes) < 3 or shapes["head.weight"][0] != num_classes or shapes["values"][1] != num_classes:
        raise CheckpointError(f"Tip-Adapter cache {path} does not fit {num_classes} classes; {again}")
    clip = load_clip(cfg.zero_shot)
    head = nn.Linear(shapes["head.weight"][1], num_classes)
    model = TipAdapter(clip.model.visual, head, torch.zeros(shapes["keys.weight"]), torch.zeros(shapes["values"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(TOWER_PREFIX)]
    if missing or unexpected:
        raise CheckpointError(f"Tip-Adapter cache {path} does not fit {clip.source}: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}; {again}")
    return model.eval(), with_tower_preprocessing(cfg, clip.preprocess)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
