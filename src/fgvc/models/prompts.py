"""Class names into words for a CLIP text tower: names cleaned the way people write them, template
ensembles (a generic set and a few per domain), a user's template or description file, and CLIP's
prompt ensembling (each class: the normalised mean of its prompts' normalised text embeddings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
import yaml

from fgvc.errors import ConfigError

# {} is the class name. "generic" is the 7-template subset the CLIP authors found best on ImageNet
# (their notebook "Prompt_Engineering_for_ImageNet"); the domain sets follow the CLIP paper's per-data-set
# prompts ("a photo of a {}, a type of aircraft.") where it has them.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "generic": ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                "a {} in a video game.", "art of the {}.", "a photo of the small {}."),
    "photo": ("a photo of a {}.",),
    "birds": ("a photo of a {}, a type of bird.", "a close-up photo of a {}, a type of bird.",
              "a photo of the {}, a bird species.", "a bird: the {}."),
    "dogs": ("a photo of a {}, a type of dog.", "a photo of the {}, a dog breed.", "a photo of my {}.",
             "a close-up photo of a {} dog."),
    "aircraft": ("a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft.",
                 "a photo of a {} airplane.", "a {} aircraft on the runway."),
    "cars": ("a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!",
             "a photo of my dirty {}.", "a photo of my clean {}.", "a photo of my new {}.",
             "a photo of my old {}."),
    "flowers": ("a photo of a {}, a type of flower.", "a close-up photo of a {} flower.",
                "a photo of the {}, a flowering plant."),
    "food": ("a photo of {}, a type of food.", "a photo of a plate of {}."),
    "leaves": ("a photo of a {} leaf.", "a photo of a leaf of the {} tree.", "a close-up photo of a {} leaf."),
    "defects": ("a photo of a {} defect.", "an inspection image showing {}.", "a close-up photo of a surface with {}.",
                "an electroluminescence image of a solar cell with {}."),
}

_LEADING_NUMBER = re.compile(r"^\d+[._](?=[^\W\d_])")  # "001.Black_footed_Albatross", "07_scratch"
_WORDNET_ID = re.compile(r"^n\d{8}[-_]")  # Stanford Dogs / ImageNet folders: "n02085620-Chihuahua"


def clean_class_name(name: str) -> str:
    """A class name as people write it: "001.Black_footed_Albatross" -> "black footed albatross",
    "n02085620-Chihuahua" -> "chihuahua"; hyphens inside a name stay ("737-200")."""
    text = _WORDNET_ID.sub("", str(name).strip())
    text = _LEADING_NUMBER.sub("", text)
    text = text.replace("_", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def resolve_templates(templates: Union[str, Sequence[str]]) -> list[str]:
    """The templates a config names: a set name of :data:`TEMPLATE_SETS`, a file (.txt: one a line, #
    comments; .yaml: a list), or a list of templates. Each holds one {} for the class name."""
    if not isinstance(templates, str):
        found, where = list(templates), "zero_shot.templates"
    elif templates in TEMPLATE_SETS:
        return list(TEMPLATE_SETS[templates])
    else:
        path = Path(templates).expanduser()
        if not path.is_file():
            raise ConfigError(f"zero_shot.templates {templates!r} is neither a template set "
                              f"({', '.join(TEMPLATE_SETS)}) nor a file; name a set, or give a .txt (one template a "
                              "line) or .yaml (a list) file")
        found, where = _read_templates(path), str(path)
    if not found:
        raise ConfigError(f"{where}: no templates; give at least one, e.g. 'a photo of a {{}}.'")
    wrong = [t for t in found if not isinstance(t, str) or t.count("{}") != 1]
    if wrong:
        raise ConfigError(f"{where}: template {wrong[0]!r} must hold the class name as one {{}} "
                          "(e.g. 'a photo of a {}, a type of bird.')")
    return found


def _read_templates(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        loaded = yaml.safe_load(text)
        if isinstance(loaded, dict) and "templates" in loaded:
            loaded = loaded["templates"]
        if not isinstance(loaded, list):
            raise ConfigError(f"{path}: a templates YAML file is a list of templates (or templates: [...])")
        return loaded
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_descriptions(path: Union[str, Path], class_names: Sequence[str]) -> dict[str, list[str]]:
    """A YAML file of class -> one phrase or a list of phrases (the class's prompts, used as written).
    A class the data set does not have is refused: a typo would silently fall back to templates."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"zero_shot.descriptions: file not found: {path}")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: descriptions are a mapping, class: a phrase (or a list of phrases)")
    loaded = {str(k): v for k, v in loaded.items()}
    unknown = sorted(set(loaded) - set(map(str, class_names)))
    if unknown:
        raise ConfigError(f"{path}: {', '.join(map(repr, unknown[:3]))} not among the data set's classes "
                          f"({', '.join(map(str, class_names[:8]))}{', ...' if len(class_names) > 8 else ''})")
    out: dict[str, list[str]] = {}
    for name, phrases in loaded.items():
        phrases = [phrases] if isinstance(phrases, str) else phrases
        if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ConfigError(f"{path}: class {name!r} needs a phrase or a list of phrases")
        out[name] = [p.strip() for p in phrases]
    return out


def class_prompts(class_names: Sequence[str], templates: Sequence[str],
                  descriptions: Optional[dict[str, list[str]]] = None) -> list[list[str]]:
    """Each class's prompts: its descriptions where the file has them, else every template filled with
    its cleaned name."""
    descriptions = descriptions or {}
    return [list(descriptions[str(name)]) if str(name) in descriptions
            else [t.format(clean_class_name(name)) for t in templates] for name in class_names]


@torch.no_grad()
def ensemble_embeddings(encode: Callable[[list[str]], torch.Tensor], prompts: Sequence[Sequence[str]],
                        batch_size: int = 256) -> torch.Tensor:
    """(classes, dim): for each class, the L2-normalised mean of the L2-normalised embeddings of its
    prompts (CLIP's prompt ensembling). ``encode``: texts -> embeddings."""
    flat = [p for group in prompts for p in group]
    embedded = torch.cat([F.normalize(encode(flat[i:i + batch_size]).float(), dim=-1)
                          for i in range(0, len(flat), batch_size)])
    rows, start = [], 0
    for group in prompts:
        rows.append(embedded[start:start + len(group)].mean(0))
        start += len(group)
    return F.normalize(torch.stack(rows), dim=-1)
