"""Particles for token editing: several fills per image, weighed by the kept tokens, the best one kept.

In raster order a free token sees only the tokens before it, so a fill cannot know that the kept tokens
to its right and below will cut off what it draws. Here K particles per image sample the free tokens as
usual, side by side in one batch; every kept token adds to its particle's log-weight the log-probability
the model gives it at that point (what the fill so far predicts about the kept tokens: an importance
weight). The image keeps the particle with the highest log-weight + FILL_WEIGHT x the log-likelihood of
its own free tokens under the prompt (the conditional model, no guidance). The weights alone often tie
(many fills agree equally well with the kept tokens); the fill's likelihood then picks the one the model
finds most natural for the prompt.

The fills run independently: resampling them as they go (sequential Monte Carlo) collapses them to a few,
which leaves the likelihood term nothing to choose among. How the rule and FILL_WEIGHT were chosen, with
the rates: docs/training-notes.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .decoding import Callback
from .generate import OwnLikelihood, side_by_side
from .sampling import Generators, SamplingOptions
from .token_model import Condition, TokenModel

FILL_WEIGHT = 0.25  # chosen on the dev edits (docs/training-notes.md)


def particle_fills(
    model: TokenModel,
    cond: Condition,
    opts: SamplingOptions,
    known: Tensor,
    keep: Tensor,
    particles: int,
    *,
    generator: Generators = None,
    callback: Callback | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fill the free tokens (keep False) of known (B, N) `particles` times per image.

    cond: the condition of the B images (guided or not, as opts says); the callback as side_by_side's (the
    caller reports the last step with the fill it keeps). -> (fills (B*K, N), image b's
    particles in rows b*K .. b*K + K - 1, kept tokens unchanged; log-weights (B, K): the kept tokens'
    log-probabilities under the guided logits at opts' temperature (no top-k/top-p, so a kept token
    outside them still counts, just as unlikely); loglik (B, K): the free tokens' log-probabilities under
    the conditional logits alone, at temperature 1)."""
    B, K = known.shape[0], particles
    R = B * K
    device = model.device
    keep = keep.to(device).repeat_interleave(K, 0)  # (R, N)
    logw = torch.zeros(R, device=device)
    loglik = OwnLikelihood(R, device, free=~keep)
    temp = opts.temperature if opts.temperature > 0 else 1.0

    def observe(t: int, token: Tensor, raw: Tensor, logits: Tensor) -> None:
        kept = keep[:, t]
        if bool(kept.any()):
            lp = (logits / temp).log_softmax(-1).gather(1, token[:, None]).squeeze(1)  # (R,)
            logw.add_(torch.where(kept, lp, 0.0))
        loglik(t, token, raw, logits)

    fills = side_by_side(
        model, cond, opts, K, known=known.to(device).repeat_interleave(K, 0), keep=keep, generator=generator,
        callback=callback, observe=observe,
    )  # fmt: skip
    return fills, logw.view(B, K), loglik.total.view(B, K)


def pick(fills: Tensor, logw: Tensor, loglik: Tensor) -> tuple[Tensor, Tensor]:
    """Each image's fill of highest score = log-weight + FILL_WEIGHT x log-likelihood, as
    `pick(*particle_fills(...))`. fills (B*K, N), logw and loglik (B, K) -> (fills (B, N), scores (B,))."""
    B, K = logw.shape
    score, k = (logw + FILL_WEIGHT * loglik).max(1)
    return fills[k + torch.arange(B, device=logw.device) * K], score
