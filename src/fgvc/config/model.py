"""The model section (which backbone, from where, with which head) and the strategy section (which
of its parameters train)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from fgvc.config.section import Section
from fgvc.registry import STRATEGIES


class ModelConfig(Section):
    name: str = Field("resnet50",
        description="backbone name in its source (timm: resnet50, tf_efficientnet_lite0, vit_small_patch16_224, ...)")
    source: Literal["timm", "torchvision", "torch_hub"] = Field("timm",
        description="where the backbone comes from: timm, torchvision or torch_hub")
    pretrained: bool = Field(True,
        description="start from pretrained weights (hub download, or model.weights from a file)")
    pretrained_file: Optional[str] = Field(
        None, description=".pth/.safetensors file, or package:MODULE/path for weights a pip package ships"
    )
    key_mapping: Literal["auto", "by_name", "by_order"] = Field(
        "auto", description="how a foreign checkpoint's keys map onto the model"
    )
    hub_repo: Optional[str] = Field(None, description="torch_hub: repository, e.g. facebookresearch/dinov2")
    hub_entry: Optional[str] = Field(None, description="torch_hub: entry point in that repository, e.g. dinov2_vits14")
    hub_kwargs: dict[str, Any] = Field(default_factory=dict,
        description="torch_hub: extra keyword arguments for the entry point")
    hub_replace_head: bool = Field(True, description="torch_hub: replace the last Linear with a new head")
    img_size: Optional[int] = Field(None, gt=0, description="input size for models that fix it (ViT, Swin); null: data.transforms.crop")
    head_hidden: list[int] = Field(default_factory=list, description="MLP head hidden sizes, e.g. [256]")
    head_dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the new classifier head")
    keep_pretrained_head: bool = Field(False, description="keep the 1000-class head and put the new head on top")
    drop_rate: float = Field(0.0, ge=0, lt=1,
        description="timm drop_rate: dropout inside the backbone before its pooling")
    drop_path_rate: float = Field(0.0, ge=0, lt=1,
        description="stochastic depth: probability of skipping a residual block in training")
    attn_drop_rate: float = Field(0.0, ge=0, lt=1, description="ViT: dropout on the attention weights")
    head_init: Literal["random", "source_classes", "zero_shot"] = Field("random",
        description="where the new head starts: random (small init); source_classes (rows of the pretrained "
                    "classifier for target classes it knows: ImageNet names, WordNet ids, model.head_map); zero_shot "
                    "(a timm CLIP tower, e.g. vit_base_patch16_clip_224.openai, with the zero_shot section's text head)")
    head_map: Optional[str] = Field(None,
        description="head_init source_classes: YAML or CSV file, target class -> source class name, WordNet id "
                    "or index (null: leave that class out)")

    @model_validator(mode="after")
    def _file_needs_pretrained(self) -> "ModelConfig":
        if self.pretrained_file and not self.pretrained:
            raise ValueError(
                f"model.pretrained_file is set ({self.pretrained_file}) but model.pretrained is false, so the file "
                "would be ignored; set model.pretrained: true to load it, or remove model.pretrained_file"
            )
        if self.head_init != "random" and not self.pretrained:
            raise ValueError(f"model.head_init: {self.head_init} starts the head from pretrained weights, but "
                             "model.pretrained is false; set model.pretrained: true or model.head_init: random")
        if self.head_init != "random" and (self.head_hidden or self.keep_pretrained_head or self.source != "timm"):
            raise ValueError(f"model.head_init: {self.head_init} needs a timm model with one Linear head (no "
                             "model.head_hidden, no model.keep_pretrained_head)")
        if self.head_map and self.head_init != "source_classes":
            raise ValueError("model.head_map is read only by model.head_init: source_classes; set that or remove it")
        return self


class StrategyConfig(Section):
    name: str = Field("full", description="transfer strategy: which parameters train")
    unfreeze_last: int = Field(1, ge=0, description="partial: stages/blocks trained besides the head")
    freeze_bn: bool = Field(True,
        description="keep frozen blocks' BatchNorm statistics fixed (eval mode) while training")
    head_lr_mult: float = Field(1.0, gt=0, description="learning rate of the new head = optim.lr x this")
    layer_decay: Optional[float] = Field(None, gt=0, le=1,
        description="layer-wise lr decay: each block towards the input gets this factor more (None: off)")
    lora_rank: int = Field(8, ge=1, description="LoRA: rank of the low-rank update")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA: scaling of the update (alpha / rank)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA: dropout on the adapter's input")
    lora_targets: list[str] = Field(default_factory=lambda: ["qkv"],
        description="LoRA: names of the linear layers that get adapters (peft target_modules)")
    unfreeze_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing stages")
    attention_blocks: Optional[int] = Field(None, ge=1, description="attention: only the last N blocks (null: all)")

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        return STRATEGIES.check(name)
