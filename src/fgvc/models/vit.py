"""A Vision Transformer written to be read, registered with timm so it is just another model name.

    image -> patches -> linear embedding (+ class token, + learned 1-D position embeddings)
          -> N pre-norm blocks [x + Attention(LN(x)); x + MLP(LN(x))] -> LN -> class token -> head

Attention has two paths that compute the same function: PyTorch's fused
``scaled_dot_product_attention`` (the fast path, used for training) and an explicit
softmax(QK^T / sqrt(d)) V that also returns the attention probabilities (used to explain).

``fgvc_vit_cifar`` is the CIFAR-10-from-scratch recipe: patch 4, hidden 256, 12 layers, 4 heads,
MLP 1024, dropout 0.1, attention dropout 0.1, init std 0.02, image 32, qkv bias.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn.functional as F
from timm.layers import DropPath, resample_abs_pos_embed
from timm.models import generate_default_cfgs, register_model
from torch import nn


@dataclass
class ViTConfig:
    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 3
    num_classes: int = 10
    dim: int = 256  # hidden size
    depth: int = 12
    heads: int = 4
    mlp_dim: int = 1024
    dropout: float = 0.1  # hidden dropout (embeddings, attention output, MLP)
    attn_dropout: float = 0.1  # dropout on the attention probabilities
    init_std: float = 0.02
    qkv_bias: bool = True
    drop_path: float = 0.0  # stochastic depth: the last block's rate, rising linearly from 0 in the first


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        assert cfg.dim % cfg.heads == 0, "dim must split evenly into heads"
        self.heads = cfg.heads
        self.head_dim = cfg.dim // cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=cfg.qkv_bias)
        self.attn_drop = nn.Dropout(cfg.attn_dropout)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.proj_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        batch, tokens, dim = x.shape
        # (B, T, 3, H, d) -> three tensors of (B, H, T, d)
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if return_attention:
            # explicit path: the same function, with the attention probabilities kept
            probs = (q @ k.transpose(-2, -1) * self.head_dim ** -0.5).softmax(dim=-1)
            out = self.attn_drop(probs) @ v
        else:
            probs = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, tokens, dim)))
        return (out, probs) if return_attention else out


class MLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: normalising before each sub-layer keeps deep stacks trainable."""

    def __init__(self, cfg: ViTConfig, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = MLP(cfg)
        # stochastic depth: in training, drop a sub-layer's residual branch for whole samples
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if return_attention:
            out, probs = self.attn(self.norm1(x), return_attention=True)
            x = x + self.drop_path(out)
            return x + self.drop_path(self.mlp(self.norm2(x))), probs
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches, each linearly projected: a strided convolution does exactly that."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        assert cfg.img_size % cfg.patch_size == 0, "image size must be a multiple of the patch size"
        self.grid_size = (cfg.img_size // cfg.patch_size,) * 2
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(cfg.in_chans, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, patches, dim)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.num_prefix_tokens = 1  # the class token comes before the patches
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, cfg.dim))
        self.pos_drop = nn.Dropout(cfg.dropout)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        self.blocks = nn.ModuleList([Block(cfg, rate) for rate in rates])
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.num_features = cfg.dim
        # timm conventions: where the classifier is, what normalisation the (absent) weights expect
        self.pretrained_cfg = {**PRETRAINED_CFG, "num_classes": cfg.num_classes,
                               "input_size": (3, cfg.img_size, cfg.img_size)}
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=self.cfg.init_std)
        nn.init.trunc_normal_(self.cls_token, std=self.cfg.init_std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=self.cfg.init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's grouping (stem, blocks, head): used by layer-wise LR decay and the partial strategy."""
        return {"stem": r"^cls_token|^pos_embed|^patch_embed", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.cfg.dim, num_classes) if num_classes else nn.Identity()

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        pos_embed = self.pos_embed
        if x.shape[1] != pos_embed.shape[1] - 1:  # an input size other than the one built for: interpolate
            side = int(round(x.shape[1] ** 0.5))
            pos_embed = resample_abs_pos_embed(pos_embed, new_size=[side, side],
                                               old_size=list(self.patch_embed.grid_size), num_prefix_tokens=1)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + pos_embed)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._tokens(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0]  # the class token
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and every block's attention probabilities (B, heads, tokens, tokens), explicit path."""
        x = self._tokens(x)
        attentions = []
        for block in self.blocks:
            x, probs = block(x, return_attention=True)
            attentions.append(probs)
        return self.forward_head(self.norm(x)), attentions


def _create(defaults: dict, pretrained: bool = False, **kwargs) -> VisionTransformer:
    if pretrained:
        raise ValueError("fgvc's ViTs have no published weights; train from scratch or set model.pretrained_file")
    renames = {"drop_rate": "dropout", "attn_drop_rate": "attn_dropout", "embed_dim": "dim",
               "drop_path_rate": "drop_path"}
    options = dict(defaults)
    for key, value in kwargs.items():
        if key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir") or value is None:
            continue
        options[renames.get(key, key)] = value
    return VisionTransformer(ViTConfig(**options))


# Registered beside the models, as timm does, so normalisation and input size resolve like any
# timm model's (the ViTs are trained from scratch with inputs scaled to [-1, 1]).
PRETRAINED_CFG = {"classifier": "head", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear",
                  "crop_pct": 1.0, "first_conv": "patch_embed.proj"}
default_cfgs = generate_default_cfgs({
    "fgvc_vit_cifar": {**PRETRAINED_CFG, "input_size": (3, 32, 32), "num_classes": 10},
    "fgvc_vit_tiny": {**PRETRAINED_CFG, "input_size": (3, 28, 28), "num_classes": 10},
})


@register_model
def fgvc_vit_cifar(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """The CIFAR-10-from-scratch recipe (about 9.5M parameters)."""
    return _create(dict(img_size=32, patch_size=4, dim=256, depth=12, heads=4, mlp_dim=1024, dropout=0.1,
                        attn_dropout=0.1, init_std=0.02, qkv_bias=True), pretrained, **kwargs)


@register_model
def fgvc_vit_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A CPU-sized twin for 28-32 px images (Fashion-MNIST): patch 4, hidden 128, 6 layers, 4 heads."""
    return _create(dict(img_size=28, patch_size=4, dim=128, depth=6, heads=4, mlp_dim=256, dropout=0.1,
                        attn_dropout=0.1, init_std=0.02, qkv_bias=True), pretrained, **kwargs)
