"""Muon for the GPTs' hidden weight matrices: SGD momentum whose update is orthogonalised (every singular
value pushed to about 1) by a few Newton-Schulz steps, so that no direction of a matrix's update dominates.
It learns more per step than AdamW on transformer blocks (Jordan et al. 2024, "Muon: an optimizer for
hidden layers"; what it bought here: docs/training-notes.md). Embeddings, the output layer, norms and
the learned null condition stay with AdamW, as Muon's authors advise."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from .precision import native_bf16

# The quintic iteration's coefficients (Jordan et al.): they drive singular values in (0, 1] into about
# [0.7, 1.2] in 5 steps, which is all the update needs (an exact U V^T is not).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: Tensor, steps: int = 5) -> Tensor:
    """About U V^T for g = U S V^T, by Newton-Schulz (in bf16 where the CPU multiplies it natively, as
    on GPUs; the iteration tolerates its rounding). g (..., m, n), a matrix or a stack of them; returns
    g's shape and dtype."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(torch.bfloat16 if g.is_cuda or native_bf16() else torch.float32)
    wide = x.shape[-2] <= x.shape[-1]
    x = x if wide else x.mT  # (..., small, large): the Gram matrix is the smaller one
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # every singular value <= 1
    for _ in range(steps):
        gram = x @ x.mT  # (..., small, small)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.mT).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon with Nesterov momentum and decoupled weight decay, for 2-D parameters only. The update is
    scaled by 0.2 * sqrt(max(m, n)) so that its RMS matches AdamW's (Liu et al. 2025, "Muon is scalable
    for LLM training"): an AdamW learning rate and schedule carry over unchanged. Matrices of one shape
    are orthogonalised together in one batched call (a step of the t2i's 34 matrices: 0.02 s here)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.95, weight_decay: float = 0.0):
        params = list(params)
        for p in params:
            if p.dim() != 2:
                raise ValueError(f"Muon: every parameter must be a matrix (2-D), got one of shape {tuple(p.shape)}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            by_shape: dict[torch.Size, list[tuple[Tensor, Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - mu)
                by_shape.setdefault(p.shape, []).append((p, p.grad.lerp(buf, mu)))  # Nesterov
            for shape, items in by_shape.items():
                updates = orthogonalize(torch.stack([u for _, u in items]))  # (k, m, n)
                scale = 0.2 * math.sqrt(max(shape))
                for (p, _), u in zip(items, updates, strict=True):
                    p.mul_(1 - lr * wd).add_(u, alpha=-lr * scale)


def hidden_matrices(model: torch.nn.Module, head: str | None = None) -> list[Tensor]:
    """Muon's share of model: the weights of its Linear layers but the output layer named head (the
    token and class embeddings, the null condition, norms and the output layer are AdamW's)."""
    return [m.weight for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != head]
