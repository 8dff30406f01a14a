"""How the weights move: the optimizer, the learning-rate schedule and the loss."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from fgvc.config.section import Section


class OptimConfig(Section):
    name: str = Field("adamw", description="sgd, adam, adamw or any timm optimizer name")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after warmup)")
    weight_decay: float = Field(0.05, ge=0,
        description="decoupled weight decay (AdamW) or L2 (SGD); not applied to norms and biases")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD: Nesterov momentum")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas")
    l1: float = Field(0.0, ge=0, description="L1 penalty weight")
    penalty_p: Union[float, Literal["inf"]] = Field(2.0, description="p of the extra Lp penalty")
    penalty_weight: float = Field(0.0, ge=0,
        description="L2-SP: weight of the pull of fine-tuned weights towards the pretrained ones (0: off)")


class ScheduleConfig(Section):
    name: Literal["none", "step", "multistep", "cosine", "cosine_restarts", "plateau", "onecycle"] = Field("cosine",
        description="learning-rate schedule over the epochs")
    warmup_epochs: float = Field(0.0, ge=0,
        description="linear warmup from warmup_lr_init to optim.lr over this many epochs (fractions allowed)")
    warmup_lr_init: float = Field(1e-6, ge=0, description="learning rate at the start of warmup")
    min_lr: float = Field(0.0, ge=0, description="lowest learning rate the schedule decays to")
    step_size: int = Field(30, ge=1, description="step: epochs between decays")
    milestones: list[int] = Field(default_factory=list,
        description="multistep: epochs at which the lr is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, description="step / multistep / plateau: factor the lr is multiplied by")
    restart_epochs: int = Field(10, ge=1, description="cosine_restarts: epochs in the first cycle")
    patience: int = Field(5, ge=0, description="plateau: epochs without improvement before the lr drops")


class LossConfig(Section):
    name: Literal["ce", "label_smoothing", "focal", "soft_target", "ordinal"] = Field(
        "ce", description="ordinal: soft labels that favour neighbouring classes, for ordered classes (ELPV grades)")
    smoothing: float = Field(0.1, ge=0, lt=1,
        description="label_smoothing: probability mass spread over the other classes")
    ordinal_scale: float = Field(2.0, gt=0, description="ordinal: softmax(-scale * distance^2); larger is closer to CE")
    focal_gamma: float = Field(2.0, ge=0, description="focal: focusing exponent (0 = cross-entropy)")
    focal_alpha: Optional[float] = Field(None, ge=0, le=1, description="focal: weight of the positive term (None: off)")
    class_weights: Literal["none", "balanced", "sqrt"] = Field(
        "none", description="balanced: n / (k * count) per class; sqrt: its square root (milder)")
    confusion: float = Field(0.0, ge=0, description="Pairwise Confusion (Dubey et al. 2018): weight of the "
                             "squared distance between the predicted distributions of image pairs of different "
                             "classes, added to the loss (0: off)")
