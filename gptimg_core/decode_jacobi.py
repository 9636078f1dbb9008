"""Jacobi decoding of the seeded sampler: several tokens per forward pass, and the very tokens `ar` draws.

The plain sampler draws token t as argmax(p_t / E_t), E_t ~ Exp(1) noise it takes from the image's generator
at step t (the exponential race). Here every position's noise is drawn first, in the order the plain sampler
would draw it, which makes the sampler a deterministic function of the prefix; Jacobi iteration then finds
its fixed point. Each pass feeds every row's window of drafts; from left to right a draft is accepted while
it equals argmax(p / E) under its now-known prefix; the first that differs is replaced by that token, and
the drafts after it are recomputed from the same pass. The result is the plain sampler's draw for the same
seed (up to floating-point differences between a window pass and a single step), so its distribution is the
plain sampler's too. Sharing each position's noise across passes is the Gumbel coupling of MC-SJD (So et al.,
2025), which raises acceptance over SJD's independent redraws while staying lossless.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .decoding import Callback, Observer, Request, guided_logits, replay, window_pass
from .sampling import probabilities


def decode_jacobi(req: Request, callback: Callback | None = None, observe: Observer | None = None) -> Tensor:
    """Sample the (B, N) raster sequence of `req` as decode_ar would for the same generators, with windows of
    req.opts.window tokens per row per pass."""
    model, opts, N, B = req.model, req.opts, req.num_tokens, req.batch
    device = model.device
    keep = req.keep if req.keep is not None else torch.zeros(B, N, dtype=torch.bool, device=device)
    seq = req.initial_tokens()  # (B, N): accepted tokens, then each row's drafts; known tokens where kept
    state = model.start(req.cond)
    guided = req.cond.guided

    first = state.prefill()[:, None]  # (R, 1, V)
    req.passes += 1
    noise = _noise(req, keep, first.shape[-1])  # (B, N, V), or None when greedy
    seq[:, 0] = torch.where(
        keep[:, 0], seq[:, 0], _pick(probabilities(guided_logits(first, B, opts, 0, N), opts)[:, 0], noise, 0)
    )
    n = [1] * B  # accepted tokens per row; drafts beyond start as the last accepted token (any start will do)
    while min(n) < N:
        a, moving, p, guided = window_pass(req, state, seq, n, guided)  # p (B, L, V)
        L = p.shape[1]
        for r in moving:
            cols = torch.arange(n[r], min(a[r] + L + 1, N), device=device)  # positions this pass predicts for row r
            target = _pick(p[r, cols - a[r] - 1], noise, cols, r)  # what the seeded sampler draws there
            target = torch.where(keep[r, cols], seq[r, cols], target)
            differs = (target != seq[r, cols]).nonzero()
            seq[r, cols] = target  # accepted ones unchanged; the rest are the next pass's drafts
            n[r] = int(cols[differs[0, 0]]) + 1 if len(differs) else int(cols[-1]) + 1
        if callback is not None:
            callback(min(n), N, seq[:, : min(n)])
    if observe is not None:
        replay(req, seq, observe)
    return seq


def _noise(req: Request, keep: Tensor, V: int) -> Tensor | None:
    """Every free position's Exp(1) noise (B, N, V), drawn position by position in the plain sampler's order."""
    if req.opts.greedy:
        return None
    B, N = keep.shape
    device = req.model.device
    return torch.stack([req.draws.exponential((B, V), device, ~keep[:, t]) for t in range(N)], 1)


def _pick(probs: Tensor, noise: Tensor | None, cols: Tensor | int, row: int | None = None) -> Tensor:
    """The exponential race: argmax p / E at each position (argmax p when greedy). probs (..., V)."""
    if noise is None:
        return probs.argmax(-1)
    e = noise[:, cols] if row is None else noise[row, cols]
    return (probs / e).argmax(-1)
