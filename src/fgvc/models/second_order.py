"""Second-order statistics of a feature map: bilinear pooling and the covariance matrix normalised by
its square root, computed with Newton-Schulz iterations (iSQRT-COV).

A fine-grained difference is often a co-occurrence ("a thin line *and* a dark spot") rather than the
presence of one feature, which average pooling cannot express; second-order pooling keeps every
product of two channels. Everything here is matrix products (no eigen-decomposition or SVD), so it
runs fast on a GPU and exports to ONNX.
"""

from __future__ import annotations

import torch


def _flat(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, HW) in float32 (products of many activations overflow half precision)."""
    return feature_map.flatten(2).float()


def bilinear(feature_map: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """B-CNN (Lin et al. 2015): the mean outer product X X^T / HW, signed square root, L2-normalised;
    (B, C, H, W) -> (B, C*C)."""
    x = _flat(feature_map)
    outer = torch.bmm(x, x.transpose(1, 2)).flatten(1) / x.shape[-1]
    signed_root = torch.sign(outer) * torch.sqrt(outer.abs() + eps)
    return torch.nn.functional.normalize(signed_root, dim=1)


def covariance(feature_map: torch.Tensor) -> torch.Tensor:
    """Sample covariance of the channels over the positions, X I' X^T with I' = (I - 11^T/M) / M; (B, C, C)."""
    x = _flat(feature_map)
    centred = x - x.mean(-1, keepdim=True)
    return torch.bmm(centred, centred.transpose(1, 2)) / x.shape[-1]


def newton_schulz_sqrt(matrix: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The square root of symmetric positive semi-definite ``matrix`` (B, C, C) by coupled Newton-Schulz
    iterations (iSQRT-COV, Li et al. 2018): pre-normalised by its trace so the iteration converges,
    then multiplied back by the trace's square root (post-compensation)."""
    size = matrix.shape[-1]
    identity = torch.eye(size, dtype=matrix.dtype, device=matrix.device).expand_as(matrix)
    trace = matrix.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-12)[:, None, None]
    a = matrix / trace
    y, z = a, identity
    for _ in range(iterations):
        t = 0.5 * (3.0 * identity - torch.bmm(z, y))
        y, z = torch.bmm(y, t), torch.bmm(t, z)
    return y * trace.sqrt()


def upper_triangle(matrix: torch.Tensor) -> torch.Tensor:
    """The upper triangle with the diagonal of symmetric (B, C, C) matrices: (B, C(C+1)/2)."""
    size = matrix.shape[-1]
    rows, cols = torch.triu_indices(size, size, device=matrix.device)
    return matrix.flatten(1)[:, rows * size + cols]


def isqrt_cov(feature_map: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """iSQRT-COV pooling: the covariance's matrix square root, vectorised; (B, C, H, W) -> (B, C(C+1)/2)."""
    return upper_triangle(newton_schulz_sqrt(covariance(feature_map), iterations))
