"""Create the network of an experiment: a timm / torchvision / torch.hub model with a head for the data set.

Pretrained weights come from the hub when online, or from ``model.pretrained_file`` (a local
.pth/.safetensors, or weights a pip package ships). A checkpoint whose head has another class count
loads everything but the head, and says so.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from pathlib import Path
from typing import Iterator, Optional

import timm
import torch
from torch import nn

from fgvc.config import ModelConfig
from fgvc.errors import WeightsError
from fgvc.models.heads import replace_classifier, reset_head
from fgvc.models.weights import LoadReport, load_weights_file

log = logging.getLogger("fgvc")

OFFLINE_HINT = (
    "If you are offline, download the weights once elsewhere and set model.pretrained_file to the "
    ".pth/.safetensors file (or package:MODULE/path for weights a pip package ships), "
    "or set model.pretrained: false to start from random weights. HF_HUB_OFFLINE=1 makes this fail fast."
)


def create_model(cfg: ModelConfig, num_classes: int,
                 input_size: Optional[int] = None) -> tuple[nn.Module, Optional[LoadReport]]:
    """The model with a ``num_classes`` head, and a report of any weights file loaded into it.

    ``input_size``: the crop it is fed; a timm model that fixes its input size (a ViT) is built for it
    unless model.img_size says otherwise (pretrained position embeddings are interpolated)."""
    if cfg.source == "timm":
        model, report = _timm_model(cfg, num_classes, input_size)
    elif cfg.source == "torchvision":
        model, report = _torchvision_model(cfg, num_classes)
    else:
        model, report = _hub_model(cfg, num_classes)
    if cfg.head_hidden or cfg.keep_pretrained_head:
        replace_classifier(model, num_classes, hidden=cfg.head_hidden, dropout=cfg.head_dropout,
                           keep_existing=cfg.keep_pretrained_head)
    return model, report


def _timm_model(cfg: ModelConfig, num_classes: int, input_size: Optional[int] = None) -> tuple[nn.Module, Optional[LoadReport]]:
    if not timm.is_model(cfg.name):  # pretrained tags (name.tag) are understood too
        close = difflib.get_close_matches(cfg.name.lower(), timm.list_models(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "`timm.list_models('*PATTERN*')` lists the names"
        raise WeightsError(f"model.name {cfg.name!r} is not a timm model; {hint}")
    head_classes = 1000 if cfg.keep_pretrained_head else num_classes
    if cfg.head_init == "zero_shot":  # a CLIP tower keeps its head: CLIP's projection to the text space
        head_classes = int(getattr(timm.get_pretrained_cfg(cfg.name), "num_classes", 0) or num_classes)
    kwargs = dict(num_classes=head_classes, drop_rate=cfg.drop_rate)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if cfg.attn_drop_rate:
        kwargs["attn_drop_rate"] = cfg.attn_drop_rate
    built_for = fixed_input_size(cfg.name)
    if cfg.img_size or (built_for and input_size and input_size != built_for):
        kwargs["img_size"] = cfg.img_size or input_size
    download = cfg.pretrained and not cfg.pretrained_file
    try:
        with offline_unless_the_hub_answers() if download else contextlib.nullcontext():
            model = timm.create_model(cfg.name, pretrained=download, **kwargs)
    except TypeError as exc:  # e.g. attn_drop_rate for a CNN
        raise WeightsError(f"model {cfg.name!r} does not take these options: {exc}") from None
    except (AssertionError, AttributeError) as exc:  # a size the architecture cannot be built for (Swin's windows)
        if "img_size" not in kwargs:
            raise
        raise WeightsError(f"{cfg.name} cannot be built for {kwargs['img_size']} px inputs ({exc or type(exc).__name__});"
                           f" set data.transforms.crop to {built_for or 'the size it was made for'}") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsError(missing_weights_message(cfg.name, exc)) from None
    report = load_weights_file(model, cfg.pretrained_file, cfg.key_mapping) if _use_file(cfg) else None
    hub_head_loaded = cfg.pretrained and not cfg.pretrained_file and head_classes == model.pretrained_cfg.get("num_classes")
    file_head_loaded = report is not None and not report.skipped_head
    if not (hub_head_loaded or file_head_loaded):
        reset_head(model)
    return model, report


def missing_weights_message(name: str, exc: Exception) -> str:
    """One line for hub weights that are neither cached nor downloadable: which repository holds them, the
    command that caches them where one is online, and the cache folder to copy."""
    pretrained = timm.get_pretrained_cfg(name)
    repo = getattr(pretrained, "hf_hub_id", None)
    if not repo:
        return f"could not get pretrained weights for {name!r}: {exc}\n{OFFLINE_HINT}"
    from huggingface_hub import constants

    return (f"could not get pretrained weights for {name!r}: not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
            f" and not downloadable; where you are online run `python -c \"import timm; timm.create_model('{name}', "
            f"pretrained=True)\"` and copy that cache here, or download the weights file from "
            f"https://huggingface.co/{repo} and set model.pretrained_file to it")


def fixed_input_size(name: str) -> Optional[int]:
    """The input size a timm model is made for when it only takes that size (a ViT's position
    embeddings, a Swin's windows), else None (a CNN takes any size)."""
    try:
        pretrained = timm.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - a name timm knows without a pretrained config
        return None
    if pretrained is None or not getattr(pretrained, "fixed_input_size", False):
        return None
    return int(pretrained.input_size[-1])


def _use_file(cfg: ModelConfig) -> bool:
    return bool(cfg.pretrained and cfg.pretrained_file)


def _torchvision_model(cfg: ModelConfig, num_classes: int) -> tuple[nn.Module, Optional[LoadReport]]:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(cfg.name)
    except ValueError:
        raise WeightsError(
            f"model.name {cfg.name!r} is not a torchvision model; e.g. {torchvision.models.list_models()[:8]}"
        ) from None
    weights = "DEFAULT" if cfg.pretrained and not cfg.pretrained_file else None
    try:
        model = builder(weights=weights)
    except Exception as exc:  # noqa: BLE001 - download failures come in many types
        raise WeightsError(f"could not get torchvision weights for {cfg.name!r}: {exc}\n{OFFLINE_HINT}") from None
    if not cfg.keep_pretrained_head:
        replace_classifier(model, num_classes)
    report = load_weights_file(model, cfg.pretrained_file, cfg.key_mapping) if _use_file(cfg) else None
    return model, report


def _hub_model(cfg: ModelConfig, num_classes: int) -> tuple[nn.Module, Optional[LoadReport]]:
    """torch.hub entry point; a local repo folder or the local hub cache works offline."""
    if not cfg.hub_repo or not cfg.hub_entry:
        raise WeightsError("model.source torch_hub needs model.hub_repo (owner/repo or a folder) and model.hub_entry")
    local = Path(cfg.hub_repo).expanduser().is_dir()
    kwargs = dict(cfg.hub_kwargs)
    try:
        model = torch.hub.load(
            str(Path(cfg.hub_repo).expanduser()) if local else cfg.hub_repo,
            cfg.hub_entry,
            source="local" if local else "github",
            trust_repo=True,
            skip_validation=True,
            **kwargs,
        )
    except Exception as exc:  # noqa: BLE001
        cache = torch.hub.get_dir()
        raise WeightsError(
            f"could not load torch.hub {cfg.hub_repo}:{cfg.hub_entry}: {exc}\n"
            f"Offline, torch.hub uses its cache in {cache}; or set model.hub_repo to a local clone of the repo."
        ) from None
    if cfg.hub_replace_head:
        replace_classifier(model, num_classes)
    report = load_weights_file(model, cfg.pretrained_file, cfg.key_mapping) if _use_file(cfg) else None
    return model, report


@contextlib.contextmanager
def offline_unless_the_hub_answers(timeout: float = 3.0) -> Iterator[None]:
    """Hub downloads as with ``HF_HUB_OFFLINE=1`` (the local cache, or one clear error at once) when
    one connection to the Hub does not open within ``timeout`` seconds: otherwise huggingface_hub
    retries every file for about a minute before it gives up."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _answers(constants.ENDPOINT, timeout):
        yield
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False


def _answers(endpoint: str, timeout: float) -> bool:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(endpoint)
    try:
        with socket.create_connection((address.hostname, address.port or (443 if address.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False
