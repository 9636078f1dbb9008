"""Plain autoregressive decoding: one forward pass per free token, runs of kept tokens fed in one pass."""

from __future__ import annotations

import torch
from torch import Tensor

from .decoding import Callback, Observer, Request
from .sampling import guide, sample


def decode_ar(req: Request, callback: Callback | None = None, observe: Observer | None = None) -> Tensor:
    """Sample the (B, N) raster sequence of `req`; kept tokens come from req.known. `observe` sees the logits
    that predict every position, kept ones included."""
    model, opts, N, B = req.model, req.opts, req.num_tokens, req.batch
    tokens, keep = req.initial_tokens(), req.keep
    all_kept = keep.all(0).tolist() if keep is not None else [False] * N  # forced in every row
    rows = req.cond.rows.shape[0]  # 2B with guidance, B without

    def guided(raw: Tensor, t: int) -> Tensor:
        return guide(raw, opts.guidance(t, N)) if rows == 2 * B else raw  # (B, V)

    state = model.start(req.cond)
    logits = state.prefill()[:, None]  # (R, 1, V)
    req.passes += 1
    t = 0
    while t < N:
        raw = logits[:, -1]
        step_logits = guided(raw, t)
        if not all_kept[t]:
            free = None if keep is None else ~keep[:, t]
            drawn = sample(step_logits, opts, req.draws, free)
            tokens[:, t] = drawn if keep is None else torch.where(keep[:, t], tokens[:, t], drawn)
        if observe is not None:
            observe(t, tokens[:, t], raw, step_logits)
        n = 1
        while t + n < N and all_kept[t + n]:
            n += 1  # feed this token and the forced run after it in one pass
        if callback is not None:
            callback(t + n, N, tokens[:, : t + n])
        # feed up to the next free token; an observer also needs the logits of a kept run to the end
        end = t + n if t + n < N else (N - 1 if observe is not None else t)
        if end == t:
            break
        if rows == 2 * B and opts.guidance(t + 1, N) is None:
            rows = B  # guidance is over for good (it never comes back): drop the null half and its cache
            state.keep_rows(B)
        fed = tokens[:, t:end]
        out = state.feed(torch.cat([fed, fed]) if rows == 2 * B else fed, t, last_only=observe is None)
        req.passes += 1
        if observe is not None:  # out[:, j] predicts the kept token t + 1 + j (the last one: the next pass's)
            for j in range(end - t if t + n >= N else n - 1):
                observe(t + 1 + j, tokens[:, t + 1 + j], out[:, j], guided(out[:, j], t + 1 + j))
        if t + n >= N:
            break
        logits = out[:, -1:]
        t += n
    return tokens
