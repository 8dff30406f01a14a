"""``method.name: transfg``: TransFG (He, Chen, Liu, Kortylewski, Yang, Bai, Wang, Yuille, "TransFG: A
Transformer Architecture for Fine-grained Recognition", AAAI 2022; authors' code TACJu/TransFG,
``models/modeling.py``). Published on CUB-200-2011: 91.7 % against 90.3 % for a plain ViT-B/16
(448 px, overlapping patches).

    tokens -> blocks 1..L-1 (attention probabilities kept) -> Part Selection Module:
        P = A_{L-1} @ ... @ A_1 per head; each head picks the patch its class-token row weighs most
    -> [CLS] + one selected token per head -> block L -> final norm -> class token -> classifier
    loss = criterion + contrastive_weight x contrastive(L2-normalised class tokens)

As the authors: the selection uses the attention probabilities before dropout, multiplied with the
later layer on the left and no residual term (their ``Part_Attention``); the selected tokens are
the hidden states that enter the last block; the contrastive loss is ``con_loss`` (same class:
1 - cos, different classes: max(cos - margin, 0), summed and divided by B^2; one version of their
code divides by B instead). Where fgvc differs:

- timm's (or fgvc's) own patch embedding stays: the paper's overlapping patches (stride 12 for
  16 px patches) are not built; they are what brings 448 px to 1,369 tokens.
- only the class-token row of the product is carried (a row vector times each matrix): the same
  product at O(T^2) a layer instead of O(T^3), taken without gradient as argmax has none.
- the last block is the backbone's own, with its pretrained weights; the authors' ``part_layer`` is
  a new block. Prefix tokens other than the class token (registers, distillation) are not fed to it.
- explain: ``forward_with_attention`` gives blocks 1..L-1's maps and the last block's attention
  placed back on the grid at the tokens it read, so ``--method attention`` shows the chosen parts
  as weighed by the class token. The last block's ``norm1`` is applied to every token before the
  selection (a per-token norm: the same values), so Grad-CAM on it sees the whole grid.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from timm.models.vision_transformer import Block as TimmBlock
from torch import nn

from fgvc.config import MethodConfig
from fgvc.errors import ConfigError
from fgvc.models import vit as fgvc_vit
from fgvc.models.methods.base import FineGrainedModel, feature_channels
from fgvc.registry import register_method

# The blocks this method runs itself (pre-norm, one fused qkv projection); others are refused.
BLOCKS = (TimmBlock, fgvc_vit.Block)
ATTENTIONS = (TimmAttention, fgvc_vit.Attention)


class Encoded(NamedTuple):
    class_token: torch.Tensor  # (B, D) after the final norm: what the classifier and the loss read
    parts: torch.Tensor  # (B, heads) positions in the token sequence of the selected tokens
    attentions: list[torch.Tensor]  # blocks 1..L-1: (B, heads, T, T) before dropout
    last_attention: torch.Tensor  # block L: (B, heads, 1 + heads, 1 + heads)


def attend(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A timm or fgvc attention module's output on ``x`` (B, T, D) and its probabilities (B, heads,
    T, T) before dropout: timm's non-fused path, written out so the probabilities can be kept."""
    batch, tokens, _ = x.shape
    heads = getattr(attn, "num_heads", None) or attn.heads
    q, k, v = attn.qkv(x).reshape(batch, tokens, 3, heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = getattr(attn, "q_norm", nn.Identity())(q), getattr(attn, "k_norm", nn.Identity())(k)
    probs = (q * getattr(attn, "scale", attn.head_dim ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    out = (attn.attn_drop(probs) @ v).transpose(1, 2).reshape(batch, tokens, heads * attn.head_dim)
    out = getattr(attn, "norm", nn.Identity())(out)
    if getattr(attn, "gate", None) is not None:
        out = out * attn.gate(x).sigmoid()
    return attn.proj_drop(attn.proj(out)), probs


def run_block(block: nn.Module, x: torch.Tensor, keep: Optional[torch.Tensor] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A pre-norm block on ``x``, or on its tokens at positions ``keep`` (B, K): (tokens, probabilities).
    ``norm1`` sees every token even when some are kept, so Grad-CAM's hook on it reads the grid."""
    normed = block.norm1(x)
    if keep is not None:
        x, normed = take_tokens(x, keep), take_tokens(normed, keep)
    out, probs = attend(block.attn, normed)
    shared = getattr(block, "drop_path", None)  # fgvc's block has one stochastic depth, timm's two
    drop1, drop2 = getattr(block, "drop_path1", shared), getattr(block, "drop_path2", shared)
    x = x + drop1(getattr(block, "ls1", nn.Identity())(out))
    return x + drop2(getattr(block, "ls2", nn.Identity())(block.mlp(block.norm2(x)))), probs


def take_tokens(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, K, D): the tokens at ``positions`` (B, K) of each image."""
    return x.gather(1, positions.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@torch.no_grad()
def select_parts(attentions: list[torch.Tensor], prefix: int) -> torch.Tensor:
    """Part Selection Module: (B, heads) positions of the patch token each head's class-token row of
    A_n @ ... @ A_1 weighs most (prefix tokens excluded)."""
    row = attentions[-1][:, :, :1]  # (B, heads, 1, T): e_cls^T A_n
    for probs in reversed(attentions[:-1]):
        row = row @ probs
    return row[:, :, 0, prefix:].argmax(-1) + prefix


def contrastive_loss(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """TransFG's contrastive loss on (B, D) features: 1 - cos for pairs of one class, max(cos - margin,
    0) for pairs of two, averaged over all B^2 pairs (the pair of an image with itself included)."""
    unit = F.normalize(features.float(), dim=1)
    cos = unit @ unit.t()
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    return torch.where(same, 1 - cos, (cos - margin).clamp_min(0)).mean()


def embed(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The token sequence that enters the first block (prefix tokens, position embeddings)."""
    if isinstance(backbone, fgvc_vit.VisionTransformer):
        return backbone._tokens(images)
    x = backbone._pos_embed(backbone.patch_embed(images))
    return backbone.norm_pre(backbone.patch_drop(x))


def check_vit(backbone: nn.Module) -> None:
    """One ConfigError line unless ``backbone`` is a ViT whose blocks this method can run itself."""
    name = getattr(backbone, "pretrained_cfg", {}).get("architecture") or type(backbone).__name__
    blocks = getattr(backbone, "blocks", None)
    if blocks is None or not hasattr(backbone, "patch_embed"):
        raise ConfigError(f"method.name transfg needs a ViT (it selects tokens by attention); {name} is not one: "
                          "use a ViT (e.g. model.name=vit_base_patch16_224) or a CNN method")
    odd = {type(b).__name__ for b in blocks if not isinstance(b, BLOCKS) or not isinstance(b.attn, ATTENTIONS)}
    if odd or len(blocks) < 2 or getattr(backbone, "cls_token", None) is None or not hasattr(backbone, "norm"):
        raise ConfigError(f"method.name transfg runs the blocks of timm's VisionTransformer or fgvc's ViT (two or more, "
                          f"with a class token); {name} has {len(blocks)} blocks of {sorted(odd) or 'that kind'}"
                          f"{'' if getattr(backbone, 'cls_token', None) is not None else ' and no class token'}")


class TransFG(FineGrainedModel):
    """ViT blocks 1..L-1 -> part selection -> last block on [CLS] + one token per head -> classifier."""

    def __init__(self, backbone: nn.Module, num_classes: int, contrastive_weight: float, margin: float):
        check_vit(backbone)
        super().__init__(backbone)
        self.contrastive_weight, self.margin = contrastive_weight, margin
        self.prefix = int(getattr(backbone, "num_prefix_tokens", 1))
        self.classifier = nn.Linear(feature_channels(backbone), num_classes)
        nn.init.trunc_normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def encode(self, images: torch.Tensor) -> Encoded:
        backbone = self.backbone
        x, attentions = embed(backbone, images), []
        for block in backbone.blocks[:-1]:
            x, probs = run_block(block, x)
            attentions.append(probs)
        parts = select_parts(attentions, self.prefix)
        keep = torch.cat([torch.zeros_like(parts[:, :1]), parts], dim=1)  # the class token is at 0
        x, last = run_block(backbone.blocks[-1], x, keep)
        token = getattr(backbone, "fc_norm", nn.Identity())(backbone.norm(x)[:, 0])
        return Encoded(token, parts, attentions, last)

    def logits(self, class_token: torch.Tensor) -> torch.Tensor:
        return self.classifier(getattr(self.backbone, "head_drop", nn.Identity())(class_token))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(images).class_token)

    def training_loss(self, images, targets, criterion):
        token = self.encode(images).class_token
        logits = self.logits(token)
        loss = criterion(logits, targets)
        if self.contrastive_weight:
            loss = loss + self.contrastive_weight * contrastive_loss(token, targets, self.margin)
        return loss, logits

    def forward_with_attention(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and each block's attention on the full token grid (what fgvc's explain reads): the
        last block's attention sits at the tokens it read (class token, selected parts), zero elsewhere."""
        encoded = self.encode(images)
        last, tokens = encoded.last_attention, encoded.attentions[-1].shape[-1]
        batch, heads, read, _ = last.shape
        keep = torch.cat([torch.zeros_like(encoded.parts[:, :1]), encoded.parts], dim=1)
        columns = last.new_zeros(batch, heads, read, tokens).scatter_add_(
            -1, keep[:, None, None, :].expand(-1, heads, read, -1), last)
        grid = last.new_zeros(batch, heads, tokens, tokens).scatter_add_(
            -2, keep[:, None, :, None].expand(-1, heads, -1, tokens), columns)
        return self.logits(encoded.class_token), [*encoded.attentions, grid]


@register_method("transfg", settings="transfg", needs="vit", mixup=False, paper="He et al. 2022, TransFG")
def transfg(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """ViT part selection: the tokens the attention picks feed the last block, plus a contrastive loss"""
    return TransFG(model, num_classes, cfg.transfg.contrastive_weight, cfg.transfg.margin)
