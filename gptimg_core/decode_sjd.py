"""Speculative Jacobi decoding (Teng et al., ICLR 2025), lossless: several tokens per forward pass, each
still distributed exactly as the plain sampler draws it.

Each row keeps a window of draft tokens after the ones it has accepted, each drawn from a recorded
proposal q (the distribution the previous pass gave that position). One pass feeds every window and gives
the target p of each position (CFG, temperature, top-k/top-p: the plain sampler's distribution). From left
to right a draft x is accepted with probability min(1, p(x) / q(x)); the first one refused is replaced by a
draw from the normalised positive part of p - q, which makes that token's law exactly p; if the whole
window is accepted, the position after it is drawn from p. Refused and later drafts are drawn anew from the
pass's p. Kept tokens (editing) are always accepted. Rows advance independently and draw their random
numbers from their own image's generator, in an order that depends on the row alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .decoding import Callback, Observer, Request, guided_logits, replay, window_pass
from .sampling import probabilities


def decode_sjd(req: Request, callback: Callback | None = None, observe: Observer | None = None) -> Tensor:
    """Sample the (B, N) raster sequence of `req` with windows of req.opts.window drafts per row."""
    model, opts, N, B, W = req.model, req.opts, req.num_tokens, req.batch, req.opts.window
    device = model.device
    keep = req.keep if req.keep is not None else torch.zeros(B, N, dtype=torch.bool, device=device)
    seq = req.initial_tokens()  # (B, N): accepted tokens, then each row's drafts; known tokens where kept
    state = model.start(req.cond)
    guided = req.cond.guided

    # position 0 is an ordinary draw from the prefill; its distribution is the first proposal for the window
    p0 = probabilities(guided_logits(state.prefill()[:, None], B, opts, 0, N), opts)  # (B, 1, V)
    req.passes += 1
    V = p0.shape[-1]
    q = torch.zeros(B, W, V, device=device)  # the drafts' proposals, position k in slot k % W
    noise = req.draws.exponential((B, W + 1, V), device)
    seq[:, 0] = torch.where(keep[:, 0], seq[:, 0], _pick(p0[:, 0], noise[:, 0]))
    n = [1] * B  # accepted tokens per row
    for r in range(B):
        _draft(seq, q, keep[r], r, 1, p0[r], noise[r, 1:], a=-1)

    while min(n) < N:
        a, moving, p, guided = window_pass(req, state, seq, n, guided)  # p (B, L, V)
        need = torch.zeros(B, dtype=torch.bool, device=device)
        need[moving] = True
        u = req.draws.uniform((B, W), device, need)  # one per draft
        noise = req.draws.exponential((B, W + 1, V), device, need)  # one draw to mend or extend, W to re-draft
        for r in moving:
            n[r] = _verify(seq, q, keep[r], p[r], u[r], noise[r, 0], r, n[r], min(n[r] + W, N), a[r])
            if n[r] < N:
                _draft(seq, q, keep[r], r, n[r], p[r], noise[r, 1:], a=a[r])
        if callback is not None:
            callback(min(n), N, seq[:, : min(n)])
    if observe is not None:
        replay(req, seq, observe)
    return seq


def _pick(probs: Tensor, noise: Tensor) -> Tensor:
    """A draw from probs (..., V) with Exp(1) noise of the same shape (the exponential race)."""
    return (probs / noise).argmax(-1)


def _accepts(u: Tensor, p: Tensor, q: Tensor) -> Tensor:
    """Accept drafts drawn from q with probability min(1, p / q), given u ~ U[0, 1) (elementwise)."""
    return u * q < p


def _verify(
    seq: Tensor, q: Tensor, keep: Tensor, p: Tensor, u: Tensor, noise: Tensor, r: int, k0: int, end: int, a: int
) -> int:
    """Accept row r's drafts at k0..end-1 against p (L, V), whose column j is position a + j + 1 -> the
    row's accepted count. keep (N,) this row's kept positions; u (W,) uniforms; noise (V,) for one draw."""
    W = q.shape[1]
    ks = torch.arange(k0, end, device=seq.device)
    x = seq[r, ks]
    ok = keep[ks] | _accepts(u[: len(ks)], p[ks - a - 1, x], q[r, ks % W, x])
    refused = (~ok).nonzero()
    if len(refused):  # the first refused draft is drawn anew from the positive part of p - q
        k = k0 + int(refused[0, 0])
        target = p[k - a - 1]
        residual = (target - q[r, k % W]).clamp_min(0)
        seq[r, k] = _pick(residual if float(residual.sum()) > 0 else target, noise)
        return k + 1
    if end < seq.shape[1]:  # the whole window accepted: the next position is an ordinary draw from p
        if not bool(keep[end]):
            seq[r, end] = _pick(p[end - a - 1], noise)
        return end + 1
    return end


def _draft(seq: Tensor, q: Tensor, keep: Tensor, r: int, k0: int, p: Tensor, noise: Tensor, *, a: int) -> None:
    """New drafts for row r at k0..k0+W-1, each drawn from p's column for its position (p (L, V), column j
    is position a + j + 1), or the last column beyond the pass's reach; each proposal recorded in q."""
    N, W = seq.shape[1], q.shape[1]
    ks = torch.arange(k0, min(k0 + W, N), device=seq.device)
    ks = ks[~keep[ks]]
    proposals = p[(ks - a - 1).clamp(max=p.shape[0] - 1)]  # (m, V)
    q[r, ks % W] = proposals
    seq[r, ks] = _pick(proposals, noise[ks - k0])
