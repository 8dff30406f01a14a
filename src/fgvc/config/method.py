"""The method section: which fine-grained method is built around the backbone (``method.name``), and
each method's own settings in a sub-section of its name (``method.wsdan.attentions``). Settings of a
method the config does not use are refused: they would be ignored."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from fgvc.config.section import Section, changed_keys
from fgvc.registry import METHODS


class HighOrderConfig(Section):
    """bilinear and isqrt_cov: second-order pooling of the last feature map."""

    dim: Optional[int] = Field(
        128, ge=2, description="channels of the learned 1x1 projection (conv, BN, ReLU) before the pooling: the "
                               "pooled vector has dim^2 (bilinear) or dim(dim+1)/2 (isqrt_cov) values; null: the "
                               "backbone's own channels")
    iterations: int = Field(5, ge=1, description="isqrt_cov: Newton-Schulz iterations of the matrix square root")


class WsdanConfig(Section):
    """WS-DAN (Hu et al. 2019): attention maps, bilinear attention pooling, attention cropping and dropping."""

    attentions: int = Field(32, ge=1, description="attention maps M (a 1x1 conv on the last feature map)")
    crop_threshold: tuple[float, float] = Field(
        (0.4, 0.6), description="training crop: the box where a sampled attention map exceeds theta x its "
                                "maximum, theta drawn uniformly from this range")
    drop_threshold: tuple[float, float] = Field(
        (0.2, 0.5), description="training drop: pixels where a sampled attention map exceeds theta x its "
                                "maximum are erased, theta drawn from this range")
    test_crop_threshold: float = Field(0.1, gt=0, lt=1, description="test time: the box of the mean attention "
                                                                    "map above this fraction of its maximum")
    center_weight: float = Field(1.0, ge=0, description="weight of the feature-centre loss")
    center_momentum: float = Field(0.05, gt=0, le=1, description="beta: how fast the feature centres move")

    @field_validator("crop_threshold", "drop_threshold")
    @classmethod
    def _a_range_of_fractions(cls, bounds: tuple[float, float], info) -> tuple[float, float]:
        low, high = bounds
        if not 0 < low <= high <= 1:
            raise ValueError(f"method.wsdan.{info.field_name} is {list(bounds)}: give [low, high] fractions of the "
                             "attention map's maximum with 0 < low <= high <= 1")
        return bounds


class DclConfig(Section):
    """DCL (Chen et al. 2019): destruction (region shuffling) and construction (region alignment)."""

    regions: int = Field(7, ge=2, description="N: the image is cut into N x N patches that are shuffled (the "
                                              "authors: 7 for CUB at 448 px; sides not divisible by N: the "
                                              "grid is centred and the few rows and columns left over stay)")
    shuffle_range: int = Field(2, ge=1, description="s: a patch moves at most s places along its row, then at "
                                                    "most s along its column (the paper's k is (s + 1) / 2)")
    adversarial_outputs: Literal["classes", "binary"] = Field(
        "classes", description="the original-vs-destroyed classifier: classes: 2 x num_classes outputs "
                               "(destroyed images of class c are c + num_classes, the authors' cls_2xmul), "
                               "binary: 2 outputs (the paper's, the authors' cls_2)")
    adversarial_weight: float = Field(1.0, ge=0, description="beta: weight of the original-vs-destroyed loss")
    alignment_weight: float = Field(1.0, ge=0, description="gamma: weight of the region-location (construction) "
                                                           "loss (the authors: 1 for CUB, 0.01 for cars and "
                                                           "aircraft)")


class ApiNetConfig(Section):
    """API-Net (Zhuang et al. 2020): pairs of similar images, a mutual vector, gates, a score-ranking loss."""

    hidden: int = Field(512, ge=1, description="width of the mutual vector's MLP: Linear(2D, hidden), dropout, "
                                               "Linear(hidden, D) (the authors: 512)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout inside the MLP and on the attentive features "
                                                        "before the classifier (the authors: 0.5)")
    margin: float = Field(0.05, ge=0, le=1, description="score ranking: the true class's softmax score from an "
                                                        "image's own gate must exceed the one from its partner's "
                                                        "gate by this much")
    rank_weight: float = Field(1.0, ge=0, description="weight of the score-ranking loss")


class TransfgConfig(Section):
    """TransFG (He et al. 2022): the tokens the attention maps single out feed the last block."""

    contrastive_weight: float = Field(1.0, ge=0, description="weight of the contrastive loss on class tokens")
    margin: float = Field(0.4, ge=0, lt=1, description="contrastive loss: cosine similarity below which two "
                                                       "images of different classes cost nothing")


class NtsConfig(Section):
    """NTS-Net (Yang et al. 2018): a navigator proposes informative regions, a teacher scores them,
    a scrutiniser classifies the image with the best ones."""

    proposals: int = Field(6, ge=1, description="M: regions the navigator proposes after NMS, each read by the "
                                                "backbone and ranked by the teacher while training")
    parts: int = Field(4, ge=1, description="K: the navigator's best regions the scrutiniser concatenates with the "
                                            "whole image (at most proposals)")
    part_size: int = Field(224, ge=8, description="side in pixels each region is resized to (the authors: 224 for "
                                                  "448 px images)")
    nms_threshold: float = Field(0.25, gt=0, lt=1, description="IoU above which overlapping proposals are dropped")

    @model_validator(mode="after")
    def _parts_among_proposals(self) -> NtsConfig:
        if self.parts > self.proposals:
            raise ValueError(f"method.nts.parts ({self.parts}) is more than method.nts.proposals "
                             f"({self.proposals}): the scrutiniser reads the best of the proposed regions")
        return self


class MethodConfig(Section):
    """The fine-grained method around the backbone."""

    name: str = Field("plain", description="fine-grained method built around the backbone (plain: none)")
    high_order: HighOrderConfig = Field(default_factory=HighOrderConfig,
                                        description="bilinear / isqrt_cov: projection and iterations")
    wsdan: WsdanConfig = Field(default_factory=WsdanConfig, description="wsdan: attention maps, crop and drop")
    dcl: DclConfig = Field(default_factory=DclConfig, description="dcl: regions and loss weights")
    api_net: ApiNetConfig = Field(default_factory=ApiNetConfig, description="api_net: mutual vector and ranking loss")
    transfg: TransfgConfig = Field(default_factory=TransfgConfig, description="transfg: contrastive loss")
    nts: NtsConfig = Field(default_factory=NtsConfig, description="nts: proposals, parts, part size")

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        return METHODS.check(name)

    @model_validator(mode="after")
    def _settings_of_this_method(self) -> "MethodConfig":
        used = METHODS.info(self.name).get("settings")
        for section in type(self).model_fields:
            if section == "name" or section == used:
                continue
            default = type(self).model_fields[section].default_factory()
            ours = getattr(self, section)
            if ours != default:
                changed = changed_keys(ours, default)
                owners = [n for n in METHODS.names() if METHODS.info(n).get("settings") == section]
                raise ValueError(f"{', '.join(f'method.{section}.{k}' for k in changed)}: settings of method.name: "
                                 f"{' / '.join(owners) or section}, which this config does not use (method.name: "
                                 f"{self.name}); remove them or set method.name to that method")
        return self
