"""Sampling whole grids of image tokens: one draw per image, or the likeliest of several side by side.

`run_sampler` is the shared entry of every sampling path (token-level editing builds on it): it runs the
decoder the options name (decode_ar.py, decode_sjd.py) on any model of the TokenModel interface.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_callables, check_int, check_model
from .decoding import Callback, Observer, Request, run
from .memory import check_memory
from .sampling import Draws, Generators, SamplingOptions, image_generators
from .settings import resolve
from .token_model import Condition, TokenModel

__all__ = ["Callback", "Observer", "generate", "run_sampler"]


def run_sampler(
    model: TokenModel,
    cond: Condition,
    opts: SamplingOptions,
    *,
    known: Tensor | None = None,
    keep: Tensor | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    observe: Observer | None = None,
) -> Tensor:
    """Sample a (B, N) raster sequence; where keep (B, N) is True the token comes from known (B, N).

    generator: one per image (image_generators), or one for all. `observe`, if given, sees the logits that
    predict every position, kept ones included (particles.py weighs fills by them).
    """
    draws = Draws(generator, cond.batch)
    return run(Request(model, cond, opts, draws, known, keep), callback, observe)


class OwnLikelihood:
    """An observer for run_sampler: each row's log-likelihood of its own tokens at the positions `free`
    (rows, N) marks (all when None), under the conditional model alone: the [cond] rows of the raw
    logits, no guidance, temperature 1. `total` (rows,) fp32."""

    def __init__(self, rows: int, device: torch.device, free: Tensor | None = None) -> None:
        self.rows, self.free = rows, free
        self.total = torch.zeros(rows, device=device)

    def __call__(self, t: int, token: Tensor, raw: Tensor, logits: Tensor) -> None:
        if self.free is not None and not bool(self.free[:, t].any()):
            return
        lp = raw[: self.rows].float().log_softmax(-1).gather(1, token[:, None]).squeeze(1)  # (rows,)
        self.total.add_(lp if self.free is None else torch.where(self.free[:, t], lp, 0.0))


def side_by_side(
    model: TokenModel,
    cond: Condition,
    opts: SamplingOptions,
    candidates: int,
    *,
    known: Tensor | None = None,
    keep: Tensor | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    observe: Observer | None = None,
) -> Tensor:
    """Sample `candidates` sequences per image of cond in one batch -> (B*K, N), image b's in rows
    b*K .. b*K + K - 1; known/keep (B*K, N) and observe as run_sampler takes them. The callback sees each
    image's first candidate while drawing, but not the last step: the caller reports that with what it keeps."""
    K = candidates

    def report(step: int, total: int, tokens: Tensor) -> None:
        if step < total:
            callback(step, total, tokens[::K])

    report_to = report if callback is not None else None
    req = Request(model, cond.repeat(K), opts, Draws(generator, cond.batch).repeat(K), known, keep)
    return run(req, report_to, observe)


def best_of_draws(
    model: TokenModel,
    cond: Condition,
    opts: SamplingOptions,
    candidates: int,
    *,
    generator: Generators = None,
    callback: Callback | None = None,
) -> Tensor:
    """Draw `candidates` sequences per image side by side and keep, for each image, the one the model
    finds likeliest under its condition (OwnLikelihood). -> (B, N). The callback sees each image's first
    candidate as it is drawn, and the kept ones at the last step."""
    B, K, N = cond.batch, candidates, model.grid**2
    device = model.device
    score = OwnLikelihood(B * K, device)
    tokens = side_by_side(model, cond, opts, K, generator=generator, callback=callback, observe=score)  # (B*K, N)
    kept = tokens.view(B, K, N)[torch.arange(B, device=device), score.total.view(B, K).argmax(1)]
    if callback is not None:
        callback(N, N, kept)
    return kept


def generate(
    model: TokenModel,
    cond: Tensor,
    *,
    cond_mask: Tensor | None = None,
    uncond: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    cfg_scale: float | None = None,
    cfg_interval: int | None = None,
    cfg_schedule: str | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    best_of: int | None = None,
    decoding: str | None = None,
    window: int | None = None,
    seed: int | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
) -> Tensor:
    """Sample image tokens (B, h, w) LongTensor.

    cond: class ids (B,) for c2i; caption features (B, T, C) with cond_mask (B, T) (bool or 0/1,
    left-padded) for t2i. uncond: the null branch of CFG (default: the model's stored null
    condition); for t2i encoded negative-prompt features with uncond_mask. Every sampling setting left None
    is the model's recommendation (model.recommended). cfg_scale 1 runs no null branch; top_k=1 is greedy.
    best_of > 1 draws that many per image side by side and keeps the one whose tokens the model finds
    likeliest under the condition. decoding "ar" draws one token per forward pass; "sjd" verifies `window`
    drafted tokens per pass (speculative Jacobi decoding), with the same distribution of images. seed: image
    i draws from seed + i, so it is the same image in any batch (or give `generator`: one per image, or one
    shared by all).
    """
    where = "generate"
    check_model(model, where)
    opts = resolve(
        model, "sample", cfg_scale=cfg_scale, cfg_interval=cfg_interval, cfg_schedule=cfg_schedule,
        temperature=temperature, top_k=top_k, top_p=top_p, decoding=decoding, window=window,
    )  # fmt: skip
    opts.check(where)
    draws = model.recommended.best_of if best_of is None else best_of
    check_int(where, "best_of", draws, minimum=1, hint=" (1 = one draw per image)")
    check_callables(where, generator, callback)
    c = model.condition(cond, cond_mask, uncond, uncond_mask, guided=opts.uses_cfg, where=where)
    check_memory(model, c.batch, draws, guided=opts.uses_cfg, where=where)
    if seed is not None:
        generator = image_generators(check_int(where, "seed", seed), c.batch)
    if draws == 1:
        tokens = run_sampler(model, c, opts, generator=generator, callback=callback)
    else:
        tokens = best_of_draws(model, c, opts, draws, generator=generator, callback=callback)
    g = model.grid
    return tokens.view(-1, g, g)
