"""Sequential Monte Carlo for token editing: several particles (fills) per image, weighted by the kept tokens.

In raster order a free token sees only the tokens before it, so a fill cannot know that the kept tokens
to its right and below will cut off what it draws. Here K particles per image sample the free tokens as
usual; every kept token multiplies its particle's weight by the probability the model gives it at that
point (what the fill so far predicts about the kept tokens), and when one image's weights degenerate its
particles are resampled (systematic resampling), so the fills whose past agrees with the kept tokens
carry on and the others are dropped early. The image keeps its heaviest particle at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .conditioning import Condition
from .generate import Callback, attention_mask, decode_attention
from .gpt import GPT
from .sampling import SamplingOptions, guide, sample


def particle_fill(
    gpt: GPT,
    cond: Condition,
    opts: SamplingOptions,
    known: Tensor,
    keep: Tensor,
    particles: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Fill the free tokens (keep False) of known (B, N) with `particles` SMC particles per image -> (B, N).

    cond: the condition of the B images (guided or not, as opts says). Kept tokens come back unchanged.
    The weights score each kept token under the guided logits at opts' temperature (no top-k/top-p, so a
    kept token outside them still counts, just as unlikely)."""
    N, B, K = gpt.cfg.block_size, known.shape[0], particles
    device = gpt.tok_embeddings.weight.device
    R = B * K
    c = cond.repeat(K)  # image b's particles are rows b*K .. b*K + K - 1
    keep = keep.to(device).repeat_interleave(K, 0)  # (R, N)
    tokens = torch.where(keep, known.to(device).repeat_interleave(K, 0), 0)
    guided, key_ok = c.tokens.shape[0] == 2 * R, c.key_ok
    all_kept, any_kept = keep.all(0).tolist(), keep.any(0).tolist()
    cache = gpt.new_cache(c.tokens.shape[0])
    T = gpt.cfg.cls_token_num
    logw = torch.zeros(B, K, device=device)
    temp = opts.temperature if opts.temperature > 0 else 1.0

    def step_logits(raw: Tensor, t: int) -> Tensor:
        return guide(raw, opts.guidance(t, N)) if guided else raw  # (R, V)

    def weigh(logits: Tensor, t: int) -> None:
        if not any_kept[t]:
            return  # free in every row: nothing to weigh
        lp = (logits / temp).log_softmax(-1).gather(1, tokens[:, t : t + 1]).squeeze(1)  # (R,)
        logw.add_(torch.where(keep[:, t], lp, 0.0).view(B, K))

    with torch.no_grad(), decode_attention(device):
        logits = gpt(None, 0, cond=c.tokens, cache=cache, mask=attention_mask(key_ok, 0, T), last_only=True)
        t = 0
        while t < N:
            s = step_logits(logits[:, -1], t)
            if not all_kept[t]:
                tokens[:, t] = torch.where(keep[:, t], tokens[:, t], sample(s, opts, generator))
            weigh(s, t)
            n = 1
            while t + n < N and all_kept[t + n]:
                n += 1  # feed this token and the kept run after it in one step
            if callback is not None:
                callback(t + n, N, tokens[::K, : t + n])
            last = t + n >= N
            fed = tokens[:, t : min(t + n, N - 1)]  # the last token is fed only to score what follows it: nothing
            if fed.shape[1] == 0:
                break
            if guided and opts.guidance(t + 1, N) is None:
                # guidance is over for good (from the first token this feed predicts): drop the null half
                guided = False
                cache.keep(slice(0, R))
                key_ok = key_ok[:R] if key_ok is not None else None
            start = T + t
            out = gpt(
                torch.cat([fed, fed]) if guided else fed,
                start,
                cache=cache,
                mask=attention_mask(key_ok, start, fed.shape[1]),
            )  # (rows, n, V)
            for j in range(min(n - 1, fed.shape[1])):  # out[:, j] predicts the kept token t + 1 + j
                weigh(step_logits(out[:, j], t + 1 + j), t + 1 + j)
            if last:
                break
            logits = out[:, -1:]
            order = _resample(logw, generator)
            if order is not None:
                rows = order if not guided else torch.cat([order, order + R])
                tokens, logits = tokens[order], logits[rows]
                cache.reorder(rows)
            t += n
    best = logw.argmax(1) + torch.arange(B, device=device) * K
    return tokens[best]


def _resample(logw: Tensor, generator: torch.Generator | None) -> Tensor | None:
    """Where an image's effective sample size falls under half its particles: systematic resampling.
    -> row order (B*K,) to apply (logw reset to 0 for those images, in place), or None if none falls."""
    B, K = logw.shape
    w = (logw - logw.amax(1, keepdim=True)).exp()  # (B, K)
    ess = w.sum(1).square() / w.square().sum(1)
    low = ess < K / 2
    if not bool(low.any()):
        return None
    cdf = (w / w.sum(1, keepdim=True)).cumsum(1)  # (B, K)
    gen_device = generator.device if generator is not None else logw.device
    u0 = torch.rand(B, 1, generator=generator, device=gen_device).to(logw.device)
    u = (u0 + torch.arange(K, device=logw.device)) / K  # (B, K) evenly spaced in [0, 1)
    pick = torch.searchsorted(cdf, u).clamp(max=K - 1)  # (B, K)
    pick = torch.where(low[:, None], pick, torch.arange(K, device=logw.device))
    logw.masked_fill_(low[:, None], 0.0)
    return (pick + torch.arange(B, device=logw.device)[:, None] * K).flatten()
