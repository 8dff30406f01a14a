"""The zero-shot engine's section: which CLIP-family model (open_clip name and pretrained tag, or a local
weights file) and how each class is put into words (a template set or file, per-class descriptions)."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import Field, model_validator

from fgvc.config.section import Section


class ZeroShotConfig(Section):
    """train.engine: zero_shot: a CLIP image tower and a head made from the text tower's class prompts."""

    model: str = Field("ViT-B-32", description="open_clip model name (ViT-B-32, ViT-L-14-336, ViT-B-16-SigLIP, "
                                               "...; open_clip.list_models()), hf-hub:ORG/REPO or local-dir:FOLDER")
    pretrained: Optional[str] = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag (open_clip.list_pretrained()): its weights from "
                                         "the Hugging Face cache, and its preprocessing (mean, std, interpolation)")
    pretrained_file: Optional[str] = Field(
        None, description="a local open_clip weights file (.bin/.pt/.safetensors) used instead of the tag's "
                          "download; the tag, if set, still gives the preprocessing")
    templates: Union[str, list[str]] = Field(
        "generic", description="prompt templates, {} = the class name: a set name (generic, photo, birds, dogs, "
                               "aircraft, cars, flowers, food, leaves, defects), a .txt/.yaml file of templates, or "
                               "a list of templates")
    descriptions: Optional[str] = Field(
        None, description="YAML file: class -> a phrase or list of phrases, used as that class's prompts as "
                          "written (classes whose names are not words, e.g. ELPV's 0.33)")

    @model_validator(mode="after")
    def _weights_named(self) -> "ZeroShotConfig":
        if not self.pretrained and not self.pretrained_file and not self.model.startswith(("hf-hub:", "local-dir:")):
            raise ValueError("zero_shot needs trained CLIP weights: set zero_shot.pretrained to an open_clip tag "
                             "(open_clip.list_pretrained()) or zero_shot.pretrained_file to a weights file")
        return self
