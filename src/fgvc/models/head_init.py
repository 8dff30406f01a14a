"""Where a new classifier head starts (``model.head_init``): today's small random init, the pretrained
classifier's rows for the target classes it already knows (``source_classes``), or a CLIP tower's
zero-shot text head (``zero_shot``).

``source_classes``: Stanford Dogs' 120 breeds are all ImageNet-1k classes; their rows of the ImageNet
head are a far better start than noise. Target classes are matched to the pretrained classes by
WordNet id ("n02085620-Chihuahua"), by name against every synonym timm lists ("tabby cat" in
"tabby, tabby cat"), or by a user mapping file (``model.head_map``, YAML or CSV: target -> source name,
WordNet id or index). Matched rows (weight and bias) are copied; the rest keep the init they had.

``zero_shot``: a timm CLIP image tower (``vit_base_patch16_clip_224.openai``: its head is CLIP's
projection) inside the zero-shot classifier, whose head rows are the class prompts' text embeddings
(``zero_shot`` names the open_clip model and the templates). Fine-tuning it is WiSE-FT's fine-tune.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import timm
import torch
from torch import nn

from fgvc.config import ExperimentConfig, ModelConfig
from fgvc.errors import ConfigError, WeightsError
from fgvc.models.clip_towers import ZeroShotClassifier
from fgvc.models.heads import classifier_name
from fgvc.models.methods.base import _UnderPrefix
from fgvc.models.prompts import clean_class_name

_WORDNET_ID = re.compile(r"^(n\d{8})(?:[-_ ]|$)")


@dataclass
class HeadInitReport:
    """What a head init did: which target classes start from which source rows."""

    how: str
    classes: int
    source: str
    matched: dict[str, str] = field(default_factory=dict)  # target class -> source class
    note: str = ""

    def __str__(self) -> str:
        if self.how == "zero_shot":
            return f"head_init zero_shot: the {self.classes} head rows are {self.source}'s text embeddings"
        text = (f"head_init source_classes: {len(self.matched)} of {self.classes} classes start from the "
                f"{self.source} classifier's rows")
        return f"{text}; {self.note}" if self.note else text

    def as_metrics(self) -> dict[str, Any]:
        """The entry of metrics.json (and so of the model card)."""
        entry: dict[str, Any] = {"how": self.how, "classes": self.classes, "source": self.source}
        if self.how == "source_classes":
            entry.update(matched=len(self.matched), pairs=dict(self.matched))
        return entry


@dataclass
class WeightsAndHead:
    """build_network's report when a head init ran: the weights file's report (or None) and the head's."""

    weights: Any
    head: HeadInitReport

    def __str__(self) -> str:
        weights = str(self.weights).replace("; the head starts from random init", "") if self.weights else None
        return "\n".join(part for part in (weights, str(self.head)) if part)


def head_init_metrics(report: Any) -> dict[str, Any]:
    """``{"head_init": ...}`` for metrics.json where ``report`` (build_network's) holds a head init."""
    return {"head_init": report.head.as_metrics()} if isinstance(report, WeightsAndHead) else {}


# --- source_classes -----------------------------------------------------------------------------------

@dataclass
class SourceClasses:
    """The pretrained classifier's classes: index -> WordNet id (where known) and names."""

    subset: str
    ids: list[str]
    names: list[list[str]]  # each index's synonyms, cleaned

    @classmethod
    def of_model(cls, name: str, count: int) -> "SourceClasses":
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset({"num_classes": count})
        if not subset:
            raise ConfigError(f"model.head_init: source_classes: {name}'s pretrained head ({count} classes) has no "
                              "class names timm knows; give model.head_map with source indices")
        info = ImageNetInfo(subset)
        if info.num_classes() != count:
            raise ConfigError(f"model.head_init: source_classes: {name}'s head has {count} classes, timm's {subset} "
                              f"names {info.num_classes()}")
        ids = list(info.label_names())
        names = [[_plain(n) for n in info.index_to_description(i).split(", ")] for i in range(count)]
        return cls(subset, ids, names)

    def index(self, target: str) -> tuple[Optional[int], str]:
        """(source index or None, why not) for a target class name, a WordNet id or an index."""
        if isinstance(target, int) or str(target).strip().isdigit():
            i = int(target)
            return (i, "") if 0 <= i < len(self.ids) else (None, f"index {i} outside 0..{len(self.ids) - 1}")
        wnid = _WORDNET_ID.match(str(target).strip())
        if wnid:
            i = self.ids.index(wnid.group(1)) if wnid.group(1) in self.ids else None
            return (i, "") if i is not None else (None, f"WordNet id {wnid.group(1)} not among them")
        name = _plain(target)
        hits = sorted({i for i, names in enumerate(self.names) if name in names})
        if len(hits) == 1:
            return hits[0], ""
        return None, (f"{name!r} names {len(hits)} of them" if hits else "")


def _plain(name: str) -> str:
    return re.sub(r"[\s\-]+", " ", clean_class_name(name)).strip()


def read_head_map(path: Union[str, Path]) -> dict[str, Union[str, int, None]]:
    """A mapping file: YAML ``target: source`` (name, WordNet id or index; null: leave out) or a CSV of two
    columns (a header row ``target,source`` is skipped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.head_map: file not found: {path}")
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["target", "source"]:
            rows = rows[1:]
        bad = [i for i, r in enumerate(rows, 1) if len(r) != 2]
        if bad:
            raise ConfigError(f"model.head_map {path}: row {bad[0]} does not have two columns (target,source)")
        return {r[0].strip(): (r[1].strip() or None) for r in rows}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"model.head_map {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"model.head_map {path} must map target class -> source class (name, WordNet id or index)")
    return {str(k): v for k, v in data.items()}


def match_classes(class_names: Sequence[str], source: SourceClasses,
                  head_map: Optional[dict[str, Any]] = None) -> tuple[dict[int, int], list[str]]:
    """(target index -> source index, notes on names that matched nothing): the mapping file first, then
    the WordNet id or the name."""
    head_map = head_map or {}
    unknown = sorted(set(head_map) - set(class_names))
    if unknown:
        raise ConfigError(f"model.head_map names classes the data set does not have: {unknown[:5]}; its classes "
                          f"are e.g. {list(class_names)[:5]}")
    pairs, notes = {}, []
    for t, name in enumerate(class_names):
        if name in head_map and head_map[name] is None:
            continue
        want = head_map.get(name, name)
        index, why = source.index(want)
        if index is None and name in head_map:
            raise ConfigError(f"model.head_map: {name} -> {want!r} is not a {source.subset} class"
                              + (f" ({why})" if why else ""))
        if index is not None:
            pairs[t] = index
        elif why:
            notes.append(f"{name}: {why}")
    return pairs, notes


def source_classifier(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(weight, bias, class count) of the pretrained model's own classifier: the same weights the network
    was built from (``model.pretrained_file`` or the hub), loaded into a twin with the source head. The
    global random state is left as it was, so the new head's init does not depend on this."""
    from fgvc.models.factory import missing_weights_message, offline_unless_the_hub_answers
    from fgvc.models.weights import load_weights_file

    count = int(getattr(timm.get_pretrained_cfg(cfg.name), "num_classes", 0) or 0)
    if not count:
        raise ConfigError(f"model.head_init: source_classes: {cfg.name} has no pretrained classifier to reuse")
    with torch.random.fork_rng(devices=[]):
        if cfg.pretrained_file:
            twin = timm.create_model(cfg.name, pretrained=False, num_classes=count)
            report = load_weights_file(twin, cfg.pretrained_file, cfg.key_mapping)
            if report.skipped_head:
                raise ConfigError(f"model.head_init: source_classes: {report.file} holds no {count}-class classifier "
                                  f"({report.head_note}); use model.head_init: random")
        else:
            try:
                with offline_unless_the_hub_answers():
                    twin = timm.create_model(cfg.name, pretrained=True, num_classes=count)
            except (OSError, RuntimeError, ValueError) as exc:
                raise WeightsError(missing_weights_message(cfg.name, exc)) from None
    head = twin.get_submodule(classifier_name(twin))
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"model.head_init: source_classes: {cfg.name}'s classifier is not one Linear layer")
    return head.weight.detach().clone(), head.bias.detach().clone(), count


def copy_source_rows(model: nn.Module, weight: torch.Tensor, bias: torch.Tensor, pairs: dict[int, int]) -> None:
    """Rows ``pairs`` (target -> source) of ``weight``/``bias`` into the model's classifier."""
    head = model.get_submodule(classifier_name(model))
    if not isinstance(head, nn.Linear) or head.in_features != weight.shape[1]:
        raise ConfigError("model.head_init: source_classes needs the new head to be one Linear layer on the "
                          "pretrained features (no model.head_hidden, no model.keep_pretrained_head)")
    with torch.no_grad():
        for target, source in pairs.items():
            head.weight[target].copy_(weight[source])
            if head.bias is not None:
                head.bias[target].copy_(bias[source])


def init_from_source_classes(model: nn.Module, cfg: ModelConfig, class_names: Sequence[str]) -> HeadInitReport:
    """Copy the pretrained classifier's rows of the target classes it knows into ``model``'s head."""
    weight, bias, count = source_classifier(cfg)
    head_map = read_head_map(cfg.head_map) if cfg.head_map else None
    numeric_only = head_map and all(isinstance(v, int) or str(v).isdigit() or v is None for v in head_map.values())
    try:
        source = SourceClasses.of_model(cfg.name, count)
    except ConfigError:
        if not numeric_only:
            raise
        source = SourceClasses("source", [f"#{i}" for i in range(count)], [[] for _ in range(count)])
    pairs, notes = match_classes(class_names, source, head_map)
    copy_source_rows(model, weight, bias, pairs)
    matched = {class_names[t]: (source.ids[s] + (f" ({source.names[s][0]})" if source.names[s] else ""))
               for t, s in pairs.items()}
    note = f"ambiguous: {'; '.join(notes[:3])}" if notes else ""
    return HeadInitReport("source_classes", len(class_names), f"{cfg.name} {source.subset}", matched, note)


# --- zero_shot ------------------------------------------------------------------------------------------

class ClipTowerClassifier(ZeroShotClassifier):
    """A timm CLIP tower (its head = CLIP's projection) in the zero-shot classifier. Strategies and layer-wise
    lr decay see the tower's stages (timm's grouping under ``visual.``); the projection is pretrained, so it
    falls in the tower's last group, not with the new head."""

    def group_matcher(self, coarse: bool = False) -> list:
        groups = list(self.visual.group_matcher(coarse).values())
        matcher = [(_UnderPrefix(pattern, "visual."), (ordinal,), suffix)
                   for ordinal, spec in enumerate(groups)
                   for pattern, suffix in ([(spec, None)] if isinstance(spec, str) else spec or [])]
        # timm groups no tower head; the projection goes with the final norm, after the last block
        return matcher + [(_UnderPrefix(r"^head", "visual."), (len(groups) - 1,), (99999,))]

    def no_weight_decay(self) -> set[str]:
        return {f"visual.{name}" for name in getattr(self.visual, "no_weight_decay", lambda: set())()}


def wrap_clip_tower(tower: nn.Module, num_classes: int) -> ClipTowerClassifier:
    """The zero-shot classifier around a timm CLIP tower: logits = head(normalised embedding), the head
    zeros until :func:`init_from_text` fills it."""
    dim = tower.get_submodule(classifier_name(tower)).out_features
    return ClipTowerClassifier(tower, torch.zeros(num_classes, dim))


def init_from_text(model: nn.Module, cfg: ExperimentConfig, class_names: Sequence[str]) -> HeadInitReport:
    """The zero-shot text head of ``cfg.zero_shot`` (the class prompts' embeddings x logit scale) into the
    head of ``model`` (from :func:`wrap_clip_tower`)."""
    from fgvc.models.clip_towers import load_clip, zero_shot_classifier

    clip = load_clip(cfg.zero_shot)
    text = zero_shot_classifier(clip, class_names, cfg.zero_shot).head
    if text.weight.shape != model.head.weight.shape:
        raise ConfigError(f"model.head_init: zero_shot: {clip.source}'s text embeddings have {text.weight.shape[1]} "
                          f"dimensions, the image tower {cfg.model.name} gives {model.head.weight.shape[1]}; name "
                          "the CLIP model the tower comes from in zero_shot.model / zero_shot.pretrained")
    with torch.no_grad():
        model.head.load_state_dict(text.state_dict())
    return HeadInitReport("zero_shot", len(class_names), clip.source)


def init_head(model: nn.Module, cfg: ExperimentConfig, class_names: Sequence[str]) -> Optional[HeadInitReport]:
    """``model.head_init`` on a freshly built, pretrained ``model``; None for ``random``."""
    how = cfg.model.head_init
    if how == "source_classes":
        return init_from_source_classes(model, cfg.model, class_names)
    if how == "zero_shot":
        return init_from_text(model, cfg, class_names)
    return None
