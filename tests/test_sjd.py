"""Speculative Jacobi decoding: the plain sampler's tokens under greedy, its distribution under sampling
(checked against exact sequence probabilities, with a biased variant that the same check must catch),
kept tokens, guidance, batches, progress and cancellation."""

import math

import pytest
import torch

from gptimg_core import decode_sjd, generate, inpaint
from gptimg_core.decoding import Request, replay, run
from gptimg_core.gpt import GPTState
from gptimg_core.sampling import Draws, SamplingOptions, probabilities

from tiny import caption, tiny_gpt


@pytest.fixture(params=[True, False], ids=["own positions", "one span"])
def row_positions(request, monkeypatch):
    """The two ways a window decoder feeds a batch: each row's window at the row's own positions (the GPT's
    states), or one span from the slowest row that covers every window (a family whose cache has one fill
    mark, such as Janus). Both run here on the GPT."""
    monkeypatch.setattr(GPTState, "per_row_positions", request.param)
    return request.param


@pytest.mark.usefixtures("row_positions")
@pytest.mark.parametrize("kind,cfg,window", [("c2i", 1.0, 4), ("c2i", 3.0, 1), ("c2i", 3.0, 16), ("t2i", 2.0, 5)])
def test_greedy_sjd_gives_the_plain_samplers_tokens(kind, cfg, window):
    gpt = tiny_gpt(kind)
    cond, mask = (torch.tensor([1, 2, 3]), None) if kind == "c2i" else caption(3, [2, 5, 6])
    plain = generate(gpt, cond, cond_mask=mask, cfg_scale=cfg, top_k=1)
    fast = generate(gpt, cond, cond_mask=mask, cfg_scale=cfg, top_k=1, decoding="sjd", window=window)
    assert torch.equal(fast, plain)


def test_greedy_sjd_under_a_cfg_interval_and_schedule():
    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [3, 6])
    kw = dict(cond_mask=mask, cfg_scale=4.0, cfg_interval=5, cfg_schedule="linear", top_k=1)
    assert torch.equal(generate(gpt, feats, decoding="sjd", window=3, **kw), generate(gpt, feats, **kw))


def _sequences(V: int, N: int) -> torch.Tensor:
    """Every sequence of N tokens over V codes, (V**N, N)."""
    grids = torch.meshgrid(*[torch.arange(V)] * N, indexing="ij")
    return torch.stack([g.flatten() for g in grids], 1)


def _exact_logprob(gpt, opts: SamplingOptions, label: int, seqs: torch.Tensor) -> torch.Tensor:
    """log P(sequence) (S,) under the plain sampler's per-position distribution, by teacher forcing."""
    S = seqs.shape[0]
    cond = gpt.condition(torch.full((S,), label), None, None, None, guided=opts.uses_cfg, where="test")
    req = Request(gpt, cond, opts, Draws(None, S))
    total = torch.zeros(S)

    def observe(t, token, raw, logits):
        total.add_(probabilities(logits, opts).gather(1, token[:, None]).squeeze(1).log())

    with torch.no_grad():
        replay(req, seqs, observe)
    return total


def _mean_logprob_gap(gpt, opts: SamplingOptions, n: int, seed: int) -> float:
    """How far the mean exact log-probability of n draws lies from its expectation, in standard errors."""
    V, N, label = gpt.vocab_size, gpt.grid**2, 4
    seqs = _sequences(V, N)
    logp = _exact_logprob(gpt, opts, label, seqs)
    p = logp.exp()
    assert abs(float(p.sum()) - 1.0) < 1e-4  # the per-position distributions multiply to a distribution
    finite = torch.where(p > 0, logp, 0.0)
    mean = float((p * finite).sum())
    sd = math.sqrt(float((p * (finite - mean) ** 2).sum()))
    cond = gpt.condition(torch.full((n,), label), None, None, None, guided=opts.uses_cfg, where="test")
    req = Request(gpt, cond, opts, Draws(torch.Generator().manual_seed(seed), n))
    draws = run(req)
    index = (draws * V ** torch.arange(N - 1, -1, -1)).sum(1)  # each draw's row in seqs
    return abs(float(logp[index].mean()) - mean) / (sd / math.sqrt(n))


@pytest.mark.usefixtures("row_positions")
@pytest.mark.parametrize("cfg,top_k,temperature", [(1.0, 0, 1.0), (2.5, 0, 1.0), (2.0, 4, 0.8)])
def test_sjd_draws_follow_the_plain_samplers_distribution(cfg, top_k, temperature):
    gpt = tiny_gpt("c2i", grid=2, vocab=6, seed=3)
    with torch.no_grad():
        gpt.output.weight.mul_(0.25)  # spread out enough that many drafts are refused and mended
    ar = SamplingOptions(cfg, top_k=top_k, temperature=temperature)
    sjd = SamplingOptions(cfg, top_k=top_k, temperature=temperature, decoding="sjd", window=3)
    assert _mean_logprob_gap(gpt, ar, 3000, seed=1) < 4.0
    assert _mean_logprob_gap(gpt, sjd, 3000, seed=1) < 4.0


def test_the_distribution_check_catches_a_biased_sjd(monkeypatch):
    gpt = tiny_gpt("c2i", grid=2, vocab=6, seed=3)
    with torch.no_grad():
        gpt.output.weight.mul_(0.25)
    sjd = SamplingOptions(2.5, decoding="sjd", window=3)
    monkeypatch.setattr(decode_sjd, "_accepts", lambda u, p, q: True)  # Jacobi drafts taken unchecked
    assert _mean_logprob_gap(gpt, sjd, 3000, seed=1) > 6.0


def test_sjd_needs_fewer_passes_when_drafts_are_good():
    gpt = tiny_gpt("c2i")
    with torch.no_grad():  # tokens no longer matter, only positions: a pass's drafts are then exact
        gpt.tok_embeddings.weight.zero_()
    cond = gpt.condition(torch.tensor([5]), None, None, None, guided=True, where="test")
    ar = Request(gpt, cond, SamplingOptions(3.0, top_k=1), Draws(None, 1))
    sjd = Request(gpt, cond, SamplingOptions(3.0, top_k=1, decoding="sjd", window=8), Draws(None, 1))
    assert torch.equal(run(ar), run(sjd))
    assert ar.passes == 16  # prefill + 15 single-token steps
    assert sjd.passes <= 5  # prefill, a pass that mends the first draft, then 8 + 1 tokens a pass


@pytest.mark.usefixtures("row_positions")
@pytest.mark.parametrize("decoding", ["ar", "sjd"])
def test_inpainting_keeps_every_kept_token(decoding):
    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [3, 6])
    codes = torch.randint(0, 64, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    keep = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.4
    out = inpaint(gpt, codes, keep, feats, cond_mask=mask, cfg_scale=2.0, particles=1, decoding=decoding, seed=3)
    assert torch.equal(out[keep], codes[keep])
    greedy = dict(cond_mask=mask, cfg_scale=2.0, top_k=1, particles=1)
    assert torch.equal(
        inpaint(gpt, codes, keep, feats, decoding="sjd", window=4, **greedy), inpaint(gpt, codes, keep, feats, **greedy)
    )


@pytest.mark.usefixtures("row_positions")
@pytest.mark.parametrize("decoding", ["ar", "sjd", "jacobi"])
@pytest.mark.parametrize("candidates", [1, 3])
def test_image_i_of_a_batch_is_the_batch_of_one_with_seed_plus_i(decoding, candidates):
    gpt = tiny_gpt("c2i")
    labels = torch.tensor([1, 2, 3])
    kw = dict(cfg_scale=2.0, best_of=candidates, decoding=decoding, window=4)
    batch = generate(gpt, labels, seed=10, **kw)
    for i in range(3):
        assert torch.equal(batch[i], generate(gpt, labels[i : i + 1], seed=10 + i, **kw)[0])


@pytest.mark.parametrize("decoding", ["sjd", "jacobi"])
def test_rows_at_their_own_positions_draw_the_same_tokens_from_fewer_fed_tokens(decoding, monkeypatch):
    gpt = tiny_gpt("t2i", grid=6)
    feats, mask = caption(4, [2, 3, 5, 6])
    widths, real = [], GPTState.feed

    def feed(self, tokens, t, **kw):
        widths.append((tokens.shape[1], torch.is_tensor(t)))
        return real(self, tokens, t, **kw)

    monkeypatch.setattr(GPTState, "feed", feed)
    kw = dict(cond_mask=mask, cfg_scale=2.0, cfg_interval=20, decoding=decoding, window=4, seed=3)
    runs, fed = [], []
    for own in (True, False):
        monkeypatch.setattr(GPTState, "per_row_positions", own)
        widths.clear()
        runs.append(generate(gpt, feats, **kw))
        fed.append(sum(w for w, _ in widths))
        if own:  # every pass a window of 4 drafts after each row's last accepted token, rows apart in most
            assert {w for w, _ in widths} == {5} and sum(apart for _, apart in widths) > len(widths) / 2
    assert torch.equal(*runs)  # each row's draws depend on the row alone
    assert fed[0] < fed[1]


def test_inpainting_batches_are_reproducible_per_image_too():
    gpt = tiny_gpt("c2i")
    labels = torch.tensor([1, 2])
    codes = torch.randint(0, 64, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    keep = torch.zeros(2, 4, 4, dtype=torch.bool)
    keep[:, :, :2] = True
    batch = inpaint(gpt, codes, keep, labels, cfg_scale=2.0, particles=4, seed=7)
    for i in range(2):
        one = inpaint(gpt, codes[i : i + 1], keep[i : i + 1], labels[i : i + 1], cfg_scale=2.0, particles=4, seed=7 + i)
        assert torch.equal(batch[i], one[0])


def test_sjd_progress_counts_accepted_tokens_and_a_raising_callback_cancels():
    gpt = tiny_gpt("c2i")
    steps = []
    generate(gpt, torch.tensor([1, 2]), decoding="sjd", window=4, seed=0, callback=lambda s, t, x: steps.append((s, t)))
    assert steps[-1] == (16, 16) and all(b[0] >= a[0] for a, b in zip(steps, steps[1:], strict=False))

    class Stop(Exception):
        pass

    def stop(step, total, tokens):
        raise Stop

    with pytest.raises(Stop):
        generate(gpt, torch.tensor([1]), decoding="sjd", callback=stop)
    assert generate(gpt, torch.tensor([1]), top_k=1, decoding="sjd").shape == (1, 4, 4)  # still usable


def test_decoding_and_window_are_checked():
    gpt = tiny_gpt("c2i")
    with pytest.raises(ValueError, match="generate: decoding must be one of"):
        generate(gpt, torch.tensor([1]), decoding="beam")
    with pytest.raises(ValueError, match="generate: window must be an integer >= 1"):
        generate(gpt, torch.tensor([1]), decoding="sjd", window=0)


@pytest.mark.usefixtures("row_positions")
@pytest.mark.parametrize(
    "kind,kw",
    [
        ("c2i", dict(cfg_scale=3.0, temperature=1.0, top_k=0)),
        ("c2i", dict(cfg_scale=1.0, temperature=0.8, top_k=5, top_p=0.9)),
        ("t2i", dict(cfg_scale=2.0, cfg_interval=6, cfg_schedule="linear", temperature=1.2)),
        ("c2i", dict(cfg_scale=2.0, top_k=1)),
    ],
)
@pytest.mark.parametrize("window", [1, 3, 16])
def test_jacobi_decoding_gives_the_plain_samplers_tokens_for_the_same_seed(kind, kw, window):
    gpt = tiny_gpt(kind)
    cond, mask = (torch.tensor([1, 2, 3]), None) if kind == "c2i" else caption(3, [2, 5, 6])
    plain = generate(gpt, cond, cond_mask=mask, seed=4, best_of=2, **kw)
    fast = generate(gpt, cond, cond_mask=mask, seed=4, best_of=2, decoding="jacobi", window=window, **kw)
    assert torch.equal(fast, plain)
    shared = dict(generator=torch.Generator().manual_seed(9), **kw)  # one generator for the batch: the same
    assert torch.equal(
        generate(gpt, cond, cond_mask=mask, decoding="jacobi", window=window, **shared),
        generate(gpt, cond, cond_mask=mask, **{**shared, "generator": torch.Generator().manual_seed(9)}),
    )


@pytest.mark.usefixtures("row_positions")
def test_jacobi_inpainting_keeps_tokens_and_matches_the_plain_sampler():
    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [3, 6])
    codes = torch.randint(0, 64, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    keep = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.4
    kw = dict(cond_mask=mask, cfg_scale=2.0, temperature=1.0, particles=3, seed=5)
    out = inpaint(gpt, codes, keep, feats, decoding="jacobi", window=4, **kw)
    assert torch.equal(out[keep], codes[keep]) and torch.equal(out, inpaint(gpt, codes, keep, feats, **kw))


def test_jacobi_needs_fewer_passes_when_drafts_are_good():
    gpt = tiny_gpt("c2i")
    with torch.no_grad():
        gpt.tok_embeddings.weight.zero_()  # only positions matter: one pass settles a whole window
    cond = gpt.condition(torch.tensor([5]), None, None, None, guided=True, where="test")
    opts = SamplingOptions(3.0, temperature=1.0, decoding="jacobi", window=8)
    req = Request(gpt, cond, opts, Draws(torch.Generator().manual_seed(0), 1))
    run(req)
    assert req.passes <= 5  # prefill, one pass to fix each fresh window's first draft and one to accept it
