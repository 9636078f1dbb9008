"""Particle fills (particles.py): kept tokens stay, weights follow the kept tokens, the pick follows both."""

import pytest
import torch

from gptimg_core.conditioning import prepare_condition
from gptimg_core.editing import score_known, token_logp
from gptimg_core.generate import run_sampler
from gptimg_core.particles import FILL_WEIGHT, particle_fills, pick
from gptimg_core.sampling import SamplingOptions

from tiny import caption, tiny_gpt


def fill(*args, **kwargs):
    """particle_fills and the pick, as inpaint runs them -> (fill (B, N), score (B,))."""
    return pick(*particle_fills(*args, **kwargs))


def _case(kind: str, cfg: float, batch: int = 2):
    gpt = tiny_gpt(kind)
    if kind == "c2i":
        cond = prepare_condition(gpt, torch.arange(batch), None, None, None, guided=cfg > 1, where="test")
    else:
        feats, mask = caption(batch, [2, 4, 3][:batch])
        cond = prepare_condition(gpt, feats, mask, None, None, guided=cfg > 1, where="test")
    known = torch.randint(0, 64, (batch, 16), generator=torch.Generator().manual_seed(3))
    keep = torch.rand(batch, 16, generator=torch.Generator().manual_seed(4)) < 0.5
    keep[:, 5:7] = False  # a hole in every image
    return gpt, cond, SamplingOptions(cfg, temperature=1.0), known, keep


@pytest.mark.parametrize("kind", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_particles_keep_every_known_token_and_repeat_with_the_seed(kind, cfg):
    gpt, cond, opts, known, keep = _case(kind, cfg)
    runs = [fill(gpt, cond, opts, known, keep, 6, generator=torch.Generator().manual_seed(7))[0] for _ in "ab"]
    assert runs[0].shape == known.shape
    assert torch.equal(runs[0][keep], known[keep])
    assert torch.equal(runs[0], runs[1])


def test_particles_drop_the_null_half_when_the_cfg_interval_ends():
    gpt, cond, _, known, keep = _case("t2i", 3.0)
    opts = SamplingOptions(3.0, cfg_interval=2, temperature=1.0)
    one, _ = fill(gpt, cond, opts, known, keep, 1, generator=torch.Generator().manual_seed(5))
    rows = []  # batch rows of each token feed
    hook = gpt.tok_embeddings.register_forward_hook(lambda module, args, out: rows.append(out.shape[0]))
    try:
        four, _ = fill(gpt, cond, opts, known, keep, 4, generator=torch.Generator().manual_seed(5))
    finally:
        hook.remove()
    plain = run_sampler(gpt, cond, opts, known=known, keep=keep, generator=torch.Generator().manual_seed(5))
    assert torch.equal(one, plain)  # the same draws as the plain sampler, guided only within the interval
    assert torch.equal(four[keep], known[keep])
    assert rows[0] == 2 * 2 * 4 and rows[-1] == 2 * 4  # [cond; null] rows of the 4 particles, then cond alone


def test_more_particles_pick_fills_that_explain_the_kept_tokens_better():
    # Kept tokens the model itself draws greedily after a hole: a fill is likelier the more it agrees with them.
    gpt, cond, _, _, _ = _case("c2i", 1.0, batch=1)
    greedy = run_sampler(gpt, cond, SamplingOptions(1.0, top_k=1))  # (1, 16)
    keep = torch.ones(1, 16, dtype=torch.bool)
    keep[:, 2:6] = False
    opts = SamplingOptions(1.0, temperature=1.0)
    logp = []
    for particles in (1, 32):
        fills = [
            fill(gpt, cond, opts, greedy, keep, particles, generator=torch.Generator().manual_seed(s))[0]
            for s in range(12)
        ]
        logp.append(sum(float(score_known(gpt, cond, f, keep)) for f in fills) / len(fills))
    assert logp[1] > logp[0] + 0.3, logp  # -3.22 against -3.84 nats (the resampling version: -3.21)


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_weights_and_likelihoods_are_the_teacher_forced_ones_and_pick_the_fill(cfg):
    gpt, cond, opts, known, keep = _case("t2i", cfg)
    K = 5
    fills, logw, loglik = particle_fills(gpt, cond, opts, known, keep, K, generator=torch.Generator().manual_seed(2))
    rows = keep.repeat_interleave(K, 0)  # (B*K, N)
    plain = cond.conditional().repeat(K)
    lp = token_logp(gpt, plain, fills)  # (B*K, N): the conditional model alone, teacher-forced
    torch.testing.assert_close(loglik.flatten(), (lp * ~rows).sum(1), atol=1e-4, rtol=1e-4)
    if cfg == 1.0:  # unguided at temperature 1: the weights are the kept tokens' teacher-forced log-probabilities
        torch.testing.assert_close(logw.flatten(), (lp * rows).sum(1), atol=1e-4, rtol=1e-4)
    assert fills.view(2, K, -1).unique(dim=1).shape[1] > 1  # independent fills, not copies
    picked, score = fill(gpt, cond, opts, known, keep, K, generator=torch.Generator().manual_seed(2))
    best = (logw + FILL_WEIGHT * loglik).argmax(1)
    assert torch.equal(picked, fills.view(2, K, -1)[torch.arange(2), best])
    torch.testing.assert_close(score, (logw + FILL_WEIGHT * loglik).amax(1))
