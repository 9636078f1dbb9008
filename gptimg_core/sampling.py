"""Turning logits into tokens: classifier-free guidance, temperature, top-k, top-p, seeded draws.

All functions return new tensors; none edits its input in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_choice, check_float, check_int

# Guidance past this overflows fp32 logits into inf - inf = NaN (LlamaGen's models are run at 1.5 to 10).
MAX_CFG = 1000.0


@dataclass(frozen=True)
class SamplingOptions:
    """How to draw each token. top_k=0 and top_p=1.0 switch those filters off; top_k=1 is greedy."""

    cfg_scale: float = 4.0
    cfg_interval: int = -1  # after this many decode steps use the conditional logits alone; -1: never
    cfg_schedule: str = "constant"  # "constant", or "linear": scale grows from 1 to cfg_scale over the image
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def check(self, where: str) -> None:
        """Raise a TypeError/ValueError naming `where` and the bad argument (bools, non-finite numbers included)."""
        check_float(
            where, "cfg_scale", self.cfg_scale, minimum=1.0, maximum=MAX_CFG, hint=" (1.0 switches guidance off)"
        )
        check_choice(where, "cfg_schedule", self.cfg_schedule, ("constant", "linear"))
        check_int(where, "cfg_interval", self.cfg_interval, minimum=-1, hint=" (-1: guide every step)")
        check_float(where, "temperature", self.temperature, minimum=0.0, hint=" (0 = greedy)")
        check_int(where, "top_k", self.top_k, minimum=0, hint=" (0 = off)")
        top_p = check_float(where, "top_p", self.top_p, maximum=1.0, hint=" (1.0 = off)")
        if not top_p > 0.0:
            raise ValueError(f"{where}: top_p must be in (0, 1] (1.0 = off), got {top_p}")

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale > 1.0

    def guidance(self, step: int, total: int) -> float | None:
        """CFG scale for image token `step` (0-based) of `total`, or None for conditional logits alone.

        LlamaGen's cfg_interval counts decode steps after the first (prefill) token: token `step`
        uses guidance while step - 1 <= cfg_interval.
        """
        if not self.uses_cfg or (self.cfg_interval > -1 and step - 1 > self.cfg_interval):
            return None
        if self.cfg_schedule == "linear":
            return 1.0 + (self.cfg_scale - 1.0) * (step + 1) / total
        return self.cfg_scale


def guide(logits: Tensor, scale: float | None) -> Tensor:
    """(2B, V) logits [cond; uncond] -> (B, V): uncond + (cond - uncond) * scale (cond alone if None)."""
    cond, uncond = logits.chunk(2, dim=0)
    if scale is None:
        return cond
    return uncond + (cond - uncond) * scale


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set logits outside the top-k / nucleus (top-p) support to -inf. logits (B, V) float."""
    out = logits
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # (B, 1)
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the mass before it already exceeds top_p; the first always stays
        drop_sorted = torch.zeros_like(cum, dtype=torch.bool)
        drop_sorted[..., 1:] = cum[..., :-1] > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample(logits: Tensor, opts: SamplingOptions, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row. logits (B, V) fp32 -> LongTensor (B,)."""
    if opts.top_k == 1 or opts.temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits / max(opts.temperature, 1e-5), opts.top_k, opts.top_p).softmax(-1)
    # Exponential race (Gumbel-max in disguise): argmax p / E with E ~ Exp(1) draws from p.
    gen_device = generator.device if generator is not None else probs.device
    noise = torch.empty(probs.shape, device=gen_device).exponential_(1.0, generator=generator)
    return (probs / noise.to(probs.device)).argmax(-1)
