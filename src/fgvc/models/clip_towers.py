"""CLIP-family models (OpenAI CLIP, OpenCLIP, SigLIP, ...) through open_clip, and the zero-shot
classifier made from one: its image tower and a linear head whose rows are the classes' prompt-ensembled
text embeddings times the model's logit scale. ``forward(images) -> logits``, so predict, eval, explain
and export see an ordinary classifier.

open_clip is an optional extra (``pip install 'fgvc[vlm]'``), imported only when a model is built.
Weights come from the Hugging Face cache (a pretrained tag) or a local file; offline with nothing
cached, the error says in one line what to download and where to put it."""

from __future__ import annotations

import contextlib
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fgvc.config import ExperimentConfig, TransformConfig, ZeroShotConfig
from fgvc.errors import CheckpointError, ConfigError, FgvcError, WeightsError
from fgvc.models.factory import offline_unless_the_hub_answers
from fgvc.models.prompts import (
    class_prompts,
    ensemble_embeddings,
    read_descriptions,
    resolve_templates,
)

INSTALL_HINT = "pip install 'fgvc[vlm]'"


def require_open_clip():
    """The open_clip module, or one line saying how to install it."""
    try:
        import open_clip
    except ImportError:
        raise FgvcError(f"train.engine: zero_shot builds CLIP models with open_clip, which is not installed: "
                        f"{INSTALL_HINT}") from None
    return open_clip


@dataclass
class ClipModel:
    """An open_clip model with its tokenizer and its own preprocessing (size, mean, std, interpolation)."""

    model: nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    preprocess: dict[str, Any]
    source: str  # "ViT-B-32 laion2b_s34b_b79k": what the weights are, in words

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts))


def load_clip(zcfg: ZeroShotConfig) -> ClipModel:
    """The open_clip model ``zcfg`` names, with its weights (cache or file), in eval mode on the CPU."""
    open_clip = require_open_clip()
    name, tag, file = zcfg.model, zcfg.pretrained, zcfg.pretrained_file
    has_schema = name.startswith(("hf-hub:", "local-dir:"))
    if not has_schema and open_clip.get_model_config(name) is None:
        close = difflib.get_close_matches(name, open_clip.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "open_clip.list_models() lists the names"
        raise WeightsError(f"zero_shot.model {name!r} is not an open_clip model; {hint}")
    tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag and not has_schema else {}
    if tag and not has_schema and not tag_cfg and not file:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise WeightsError(f"zero_shot.pretrained {tag!r} is not a tag of {name}; its tags: "
                           f"{', '.join(tags) or 'none (give zero_shot.pretrained_file)'}")
    kwargs: dict[str, Any] = {"force_quick_gelu": bool(tag_cfg.get("quick_gelu"))}
    if file:  # weights from the file; preprocessing from the tag where one is named
        if not Path(file).expanduser().is_file():
            raise WeightsError(f"zero_shot.pretrained_file not found: {file}")
        pretrained = str(Path(file).expanduser())
        kwargs["force_preprocess_cfg"] = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                          if k in tag_cfg}
    else:
        pretrained = None if has_schema else tag
    source = f"{name} {Path(file).name if file else tag or ''}".strip()
    with _quiet_open_clip(), offline_unless_the_hub_answers():
        try:
            model = open_clip.create_model(name, pretrained=pretrained, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a failed download or a file that does not fit
            raise WeightsError(_weights_message(zcfg, tag_cfg, exc)) from None
        try:
            tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:  # noqa: BLE001 - an HF tokenizer that is not cached
            raise WeightsError(f"the tokenizer of {name} could not be loaded ({_first_line(exc)}); download it where "
                               "you are online (open_clip.get_tokenizer) and copy the Hugging Face cache "
                               f"({_hub_cache()}) here") from None
    model.eval()
    preprocess = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return ClipModel(model, tokenizer, preprocess, source)


def _weights_message(zcfg: ZeroShotConfig, tag_cfg: dict, exc: Exception) -> str:
    name, tag, file = zcfg.model, zcfg.pretrained, zcfg.pretrained_file
    if file:
        return f"zero_shot.pretrained_file {file} does not fit open_clip model {name}: {_first_line(exc)[:300]}"
    repo = (tag_cfg.get("hf_hub") or "").rstrip("/")
    file_hint = (f"open_clip_model.safetensors from https://huggingface.co/{repo}" if repo
                 else tag_cfg.get("url") or "the weights file")
    return (f"CLIP weights {name} / {tag} are not in the Hugging Face cache ({_hub_cache()}) and could not be "
            f"downloaded: where you are online run `python -c \"import open_clip as oc; oc.create_model('{name}', "
            f"pretrained='{tag}'); oc.get_tokenizer('{name}')\"` and copy that cache here, or download {file_hint} "
            "and set zero_shot.pretrained_file to it")


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs every step (and each failure twice) on the root logger: its errors become ours."""
    before = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(before)


class ZeroShotClassifier(nn.Module):
    """An image tower and a linear head: logits = head(normalised image embedding), the head's rows the
    classes' normalised text embeddings times the logit scale (its bias SigLIP's logit bias, else 0)."""

    fgvc_classifier = "head"  # what models.heads.classifier_name finds

    def __init__(self, visual: nn.Module, class_embeddings: torch.Tensor, logit_scale: float = 1.0,
                 logit_bias: float = 0.0):
        super().__init__()
        self.visual = visual
        classes, dim = class_embeddings.shape
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():
            self.head.weight.copy_(class_embeddings * logit_scale)
            self.head.bias.fill_(logit_bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.visual(images), dim=-1))


def zero_shot_classifier(clip: ClipModel, class_names: Sequence[str], zcfg: ZeroShotConfig) -> ZeroShotClassifier:
    """The classifier of ``class_names``: prompts from ``zcfg`` (templates, descriptions), each class's
    row the prompt-ensembled text embedding."""
    templates = resolve_templates(zcfg.templates)
    descriptions = read_descriptions(zcfg.descriptions, class_names) if zcfg.descriptions else None
    embeddings = ensemble_embeddings(clip.encode_text, class_prompts(class_names, templates, descriptions))
    model = clip.model
    scale = model.logit_scale.exp().item() if hasattr(model, "logit_scale") else 1.0
    bias = model.logit_bias.item() if getattr(model, "logit_bias", None) is not None else 0.0
    return ZeroShotClassifier(model.visual, embeddings, scale, bias).eval()


def save_head(classifier: ZeroShotClassifier, path: Path, source: str) -> Path:
    """The text head alone (safetensors: plain tensors); the tower is rebuilt from the config's weights."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in classifier.head.state_dict().items()}
    save_file(state, str(path), metadata={"clip": source})
    return Path(path)


def load_zero_shot(cfg: ExperimentConfig, head_file: Path, num_classes: int) -> tuple[ZeroShotClassifier,
                                                                                       ExperimentConfig]:
    """A zero-shot run's classifier (the tower rebuilt from ``cfg.zero_shot``'s weights, the saved head on
    it) and ``cfg`` with the tower's preprocessing filled in (:func:`with_tower_preprocessing`)."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(head_file))
    except Exception as exc:  # noqa: BLE001 - truncated or not a safetensors file
        raise CheckpointError(f"zero-shot head {head_file} is unreadable ({_first_line(exc)}); run the "
                              "zero-shot engine again") from None
    weight = state.get("weight")
    if weight is None or weight.ndim != 2 or weight.shape[0] != num_classes:
        raise CheckpointError(f"zero-shot head {head_file} does not fit {num_classes} classes; run the zero-shot "
                              "engine again")
    clip = load_clip(cfg.zero_shot)
    classifier = ZeroShotClassifier(clip.model.visual, torch.zeros_like(weight))
    try:
        classifier.head.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"zero-shot head {head_file} does not fit {clip.source}: {_first_line(exc)[:200]}; "
                              "run the zero-shot engine again") from None
    return classifier.eval(), with_tower_preprocessing(cfg, clip.preprocess)


def with_tower_preprocessing(cfg: ExperimentConfig, preprocess: dict[str, Any]) -> ExperimentConfig:
    """``cfg`` with the CLIP tower's own preprocessing where data.transforms leaves it open: mean, std and
    interpolation where null; resize and crop = the tower's input size where both are at their defaults
    (CLIP resizes the short side to its input size, then centre-crops). A crop the tower cannot take is
    refused in one line."""
    t, defaults = cfg.data.transforms, TransformConfig.model_fields
    size = preprocess.get("size", t.crop)
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    if size[0] != size[1]:
        raise ConfigError(f"{cfg.zero_shot.model} takes {size[0]}x{size[1]} images; fgvc's transforms crop squares")
    changes: dict[str, Any] = {}
    if (t.resize, t.crop) == (defaults["resize"].default, defaults["crop"].default):
        changes.update(resize=size[0], crop=size[0])
    elif t.crop != size[0]:
        raise ConfigError(f"data.transforms.crop is {t.crop}, but {cfg.zero_shot.model} takes {size[0]} px images; "
                          f"set data.transforms.crop: {size[0]} (and resize >= it), or leave both at their defaults "
                          "for the model's own preprocessing")
    for key in ("mean", "std"):
        if getattr(t, key) is None and preprocess.get(key) is not None:
            changes[key] = tuple(float(v) for v in preprocess[key])
    interpolation = preprocess.get("interpolation")
    if t.interpolation is None and interpolation in ("bilinear", "bicubic", "nearest"):
        changes["interpolation"] = interpolation
    transforms = TransformConfig(**{**t.model_dump(), **changes})
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"transforms": transforms})})


def describe_preprocessing(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved input pipeline, for metrics.json."""
    t = cfg.data.transforms
    return {"resize": t.resize, "crop": t.crop, "mean": list(t.mean or ()), "std": list(t.std or ()),
            "interpolation": t.interpolation}
