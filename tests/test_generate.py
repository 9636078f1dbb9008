"""Sampling: KV cache vs full forward, seeds, CFG, top-k/top-p support, cancellation, input errors."""

import pytest
import torch

from gptimg_core import generate
from gptimg_core.decoding import decode_attention
from gptimg_core.gpt import attention_mask
from gptimg_core.sampling import SamplingOptions, filter_logits

from tiny import caption, tiny_gpt


@pytest.mark.parametrize("kind,n_kv", [("c2i", None), ("c2i", 2), ("t2i", None), ("t2i", 1)])
def test_kv_cached_decoding_equals_full_forward(kind, n_kv):
    gpt = tiny_gpt(kind, n_kv_head=n_kv)
    if kind == "c2i":
        cond, mask = torch.tensor([1, 7]), None
    else:
        cond, mask = caption(2, [2, 5])
    key_ok = None
    if mask is not None:
        key_ok = torch.cat([mask, torch.ones(2, 16, dtype=torch.bool)], 1)[:, None, None]
    tokens = torch.randint(0, 64, (2, 15))
    T = gpt.cfg.cls_token_num
    with torch.no_grad():
        full = gpt(tokens, 0, cond=cond, mask=attention_mask(key_ok, 0, T + 15))  # (B, T+15, V)
        cache = gpt.new_cache(2)
        steps = [gpt(None, 0, cond=cond, cache=cache, mask=attention_mask(key_ok, 0, T))]
        steps.append(gpt(tokens[:, :3], T, cache=cache, mask=attention_mask(key_ok, T, 3)))  # a chunk
        for t in range(3, 15):
            steps.append(gpt(tokens[:, t : t + 1], T + t, cache=cache, mask=attention_mask(key_ok, T + t, 1)))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind,graphs", [("c2i", False), ("t2i", False), ("t2i", True)])
def test_rows_fed_at_their_own_positions_get_the_logits_each_would_get_alone(kind, graphs):
    gpt = tiny_gpt(kind, n_kv_head=2)
    gpt.cuda_graphs = graphs  # True: through the fixed-size passes (uncaptured off CUDA)
    cond, mask = (torch.tensor([1, 7, 4]), None) if kind == "c2i" else caption(3, [2, 5, 6])
    rows = gpt.condition(cond, mask, None, None, guided=False, where="test")
    tokens = torch.randint(0, 64, (3, 16))
    together = gpt.start(rows)
    alone = [gpt.start(gpt.condition(cond[r : r + 1], None if mask is None else mask[r : r + 1], None, None,
                                     guided=False, where="test")) for r in range(3)]  # fmt: skip
    torch.testing.assert_close(together.prefill(), torch.cat([s.prefill() for s in alone]))
    with torch.no_grad():
        together.feed(tokens[:, :6], 0)
        for r, s in enumerate(alone):
            s.feed(tokens[r : r + 1, :6], 0)
        # each row at its own offset, rewinds included (row 2 goes back to 1): a feed overwrites what lies after
        for starts in ([5, 2, 4], [6, 3, 1], [9, 5, 2]):
            fed = torch.stack([tokens[r, t : t + 4] for r, t in enumerate(starts)])
            got = together.feed(fed, torch.tensor(starts))
            want = torch.cat([alone[r].feed(fed[r : r + 1], t) for r, t in enumerate(starts)])
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            last = together.feed(fed, torch.tensor(starts), last_only=True)
            torch.testing.assert_close(last, want[:, -1:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"GPTState.feed: t must be an int or one start per row, shape \(3,\)"):
        together.feed(fed, torch.tensor([1, 2]))


def test_same_seed_same_tokens_and_independent_of_global_rng():
    gpt = tiny_gpt("c2i")
    a = generate(gpt, torch.tensor([3, 4]), generator=torch.Generator().manual_seed(11))
    torch.manual_seed(999)
    torch.rand(100)
    b = generate(gpt, torch.tensor([3, 4]), generator=torch.Generator().manual_seed(11))
    c = generate(gpt, torch.tensor([3, 4]), generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (2, 4, 4) and a.dtype == torch.long


def _batch_sizes(gpt):
    sizes = []
    gpt.tok_embeddings.register_forward_hook(lambda m, i, o: sizes.append(o.shape[0]))
    gpt.cls_embedding.register_forward_hook(lambda m, i, o: sizes.append(o.shape[0]))
    return sizes


def test_cfg_scale_one_runs_no_null_branch():
    gpt = tiny_gpt("c2i")
    sizes = _batch_sizes(gpt)
    generate(gpt, torch.tensor([1, 2, 3]), cfg_scale=1.0)
    assert sizes and set(sizes) == {3}
    sizes.clear()
    generate(gpt, torch.tensor([1, 2, 3]), cfg_scale=3.0)
    assert set(sizes) == {6}


def test_cfg_interval_drops_null_branch_after_interval():
    gpt = tiny_gpt("c2i")
    sizes = _batch_sizes(gpt)
    generate(gpt, torch.tensor([1]), cfg_scale=3.0, cfg_interval=2)
    # tokens 0..3 are guided: the prefill and the feeds of tokens 0..2 run doubled, the rest single
    assert sizes[:4] == [2, 2, 2, 2] and set(sizes[4:]) == {1}


def test_cfg_changes_tokens_and_negative_prompt_is_used():
    gpt = tiny_gpt("t2i")
    cond, mask = caption(1, [3])
    neg, neg_mask = caption(1, [4], seed=5)
    kw = dict(cond_mask=mask, top_k=1)
    plain = generate(gpt, cond, cfg_scale=1.0, **kw)
    guided = generate(gpt, cond, cfg_scale=6.0, **kw)
    negative = generate(gpt, cond, cfg_scale=6.0, uncond=neg, uncond_mask=neg_mask, **kw)
    assert not torch.equal(plain, guided)
    assert not torch.equal(guided, negative)


def test_linear_schedule_ramps_scale():
    opts = SamplingOptions(cfg_scale=5.0, cfg_schedule="linear")
    scales = [opts.guidance(t, 10) for t in range(10)]
    assert scales[0] == pytest.approx(1.4) and scales[-1] == pytest.approx(5.0)
    assert all(a < b for a, b in zip(scales, scales[1:], strict=False))


def test_filter_logits_keeps_top_k_and_nucleus():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    p = logits.softmax(-1)[0]  # 0.636, 0.234, 0.086, ...
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))[0]
    assert kept.tolist() == [True, True, False, False, False]
    assert p[0] < 0.8 < p[0] + p[1]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1  # always at least one


def _first_token_draws(gpt, n, **kw):
    cond = torch.full((n,), 2)
    return generate(gpt, cond, cfg_scale=1.0, generator=torch.Generator().manual_seed(0), **kw).view(n, -1)[:, 0]


def test_top_k_and_top_p_restrict_the_support():
    gpt = tiny_gpt("c2i", seed=3)
    with torch.no_grad():
        logits = gpt(None, 0, cond=torch.tensor([2]))[0, -1]
    order = logits.argsort(descending=True)
    free = set(_first_token_draws(gpt, 400).tolist())
    top5 = set(_first_token_draws(gpt, 400, top_k=5).tolist())
    assert top5 <= set(order[:5].tolist()) and len(top5) >= 3
    assert len(free) > len(top5)  # without the filter the draws really range wider
    probs = logits.softmax(-1)[order]
    nucleus = int((probs.cumsum(0) < 0.5).sum()) + 1
    top_p = set(_first_token_draws(gpt, 400, top_p=0.5).tolist())
    assert top_p <= set(order[:nucleus].tolist())
    # draws follow the distribution: the most likely token is the most frequent under top-k
    draws = _first_token_draws(gpt, 400, top_k=5)
    assert torch.bincount(draws, minlength=64).argmax() == order[0]


def test_greedy_is_deterministic_without_generator():
    gpt = tiny_gpt("c2i")
    assert torch.equal(generate(gpt, torch.tensor([5]), top_k=1), generate(gpt, torch.tensor([5]), top_k=1))


def test_callback_reports_progress_and_cancel_leaves_model_usable():
    gpt = tiny_gpt("c2i")
    seen = []

    class Stop(Exception):
        pass

    def cancel(step, total, tokens):
        seen.append((step, total, tuple(tokens.shape)))
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        generate(gpt, torch.tensor([1, 2]), callback=cancel, generator=torch.Generator().manual_seed(0))
    assert seen == [(s, 16, (2, s)) for s in range(1, 6)]
    a = generate(gpt, torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0))
    b = generate(tiny_gpt("c2i"), torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("decoding", ["ar", "sjd"])
def test_decoding_leaves_ordinary_tensors_and_a_trainable_model(decoding):
    # The decoders run in inference mode: what they return and what they cache must still serve autograd.
    gpt = tiny_gpt("c2i").train()
    tokens = generate(gpt, torch.tensor([1]), decoding=decoding, generator=torch.Generator().manual_seed(0))
    assert not tokens.is_inference()
    tokens[0, 0, 0] = 3  # in place, outside inference mode
    logits = gpt(tokens.view(1, -1)[:, :-1], 0, cond=torch.tensor([1]))
    logits.logsumexp(-1).mean().backward()  # the rope table made while decoding is saved for backward
    assert gpt.tok_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kind,kwargs,match",
    [
        ("c2i", dict(cond=torch.tensor([10])), r"generate: cond holds class ids \[10\].*classes 0..9"),
        ("c2i", dict(cond=torch.randn(1, 6, 16)), r"class-conditional \(c2i\) model, so cond must be"),
        ("t2i", dict(cond=torch.tensor([1])), r"text-conditional \(t2i\) model, so cond must be caption features"),
        ("t2i", dict(cond=torch.randn(1, 5, 16)), r"expects \(B, 6, 16\); use a text encoder with max_length=6"),
        ("t2i", dict(cond=torch.randn(1, 6, 16), cond_mask=torch.ones(1, 5)), r"cond_mask must be a \(B, T\)"),
        (
            "c2i",
            dict(cond=torch.tensor([1]), cfg_scale=0.5),
            r"generate: cfg_scale must be a finite number in \[1.0, 1000.0\]",
        ),
        ("c2i", dict(cond=torch.tensor([1]), top_p=0.0), r"generate: top_p must be in \(0, 1\]"),
        ("c2i", dict(cond=torch.tensor([1]), top_k=-1), r"generate: top_k must be an integer >= 0"),
        ("c2i", dict(cond=torch.tensor([1]), cfg_schedule="cosine"), r"cfg_schedule must be one of \[.constant."),
        ("c2i", dict(cond=torch.tensor([], dtype=torch.long)), r"generate: cond is an empty batch"),
    ],
)
def test_bad_inputs_are_named(kind, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        generate(tiny_gpt(kind), **kwargs)


def test_decode_loops_on_cuda_leave_out_cudnn_attention_and_restore_the_settings():
    # the flags only: no GPU is needed to set them (what the choice buys is measured in bench/decode_speed.py)
    before = (torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled())
    with decode_attention(torch.device("cuda")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert (torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled()) == before
    with decode_attention(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before[0]  # the CPU path changes nothing


def test_an_observer_sees_every_position_once_in_order_without_changing_the_draws():
    from gptimg_core.conditioning import prepare_condition
    from gptimg_core.generate import run_sampler

    gpt = tiny_gpt("c2i")
    cond = prepare_condition(gpt, torch.tensor([1, 2]), None, None, None, guided=True, where="test")
    known = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    keep = torch.zeros(2, 16, dtype=torch.bool)
    keep[:, 3:7] = True  # a kept run in the middle
    keep[:, 12:] = True  # and one to the end
    opts = SamplingOptions(3.0, temperature=1.0)
    seen = []
    observed = run_sampler(gpt, cond, opts, known=known, keep=keep, generator=torch.Generator().manual_seed(1),
                           observe=lambda t, token, raw, logits: seen.append((t, token.clone(), raw.shape, logits.shape)))  # fmt: skip
    plain = run_sampler(gpt, cond, opts, known=known, keep=keep, generator=torch.Generator().manual_seed(1))
    assert torch.equal(observed, plain)
    assert [t for t, *_ in seen] == list(range(16))
    assert all(torch.equal(token, observed[:, t]) for t, token, *_ in seen)
    assert {(raw, logits) for *_, raw, logits in seen} == {((4, 64), (2, 64))}  # [cond; null] rows, guided


@pytest.mark.parametrize("kind,cfg", [("c2i", 1.0), ("c2i", 3.0), ("t2i", 2.0)])
def test_candidates_keep_each_images_likeliest_draw_under_its_condition(kind, cfg):
    from gptimg_core.conditioning import prepare_condition
    from gptimg_core.editing import token_logp
    from gptimg_core.generate import run_sampler

    gpt = tiny_gpt(kind)
    cond, mask = (torch.tensor([1, 2]), None) if kind == "c2i" else caption(2, [2, 5])
    K, opts = 6, SamplingOptions(cfg, temperature=1.0)
    c = prepare_condition(gpt, cond, mask, None, None, guided=cfg > 1, where="test")
    draws = run_sampler(gpt, c.repeat(K), opts, generator=torch.Generator().manual_seed(3))  # (2*K, 16)
    plain = c.conditional()
    loglik = token_logp(gpt, plain.repeat(K), draws).sum(1).view(2, K)  # teacher-forced, no guidance
    assert draws.view(2, K, -1).unique(dim=1).shape[1] > 1  # independent draws, not copies
    picked = generate(gpt, cond, cond_mask=mask, cfg_scale=cfg, temperature=1.0, best_of=K,
                      generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert picked.shape == (2, 4, 4)
    assert torch.equal(picked.view(2, -1), draws.view(2, K, -1)[torch.arange(2), loglik.argmax(1)])


def test_more_candidates_give_draws_the_model_finds_likelier():
    from gptimg_core.conditioning import prepare_condition
    from gptimg_core.editing import token_logp

    gpt = tiny_gpt("c2i")
    cond = torch.arange(8)
    c = prepare_condition(gpt, cond, None, None, None, guided=False, where="test")
    mean = {}
    for k in (1, 16):
        g = torch.Generator().manual_seed(0)
        codes = generate(gpt, cond, cfg_scale=1.0, temperature=1.0, best_of=k, generator=g)
        mean[k] = float(token_logp(gpt, c, codes.view(8, -1)).sum(1).mean())
    assert mean[16] > mean[1] + 1.0, mean


def test_candidates_report_each_images_first_draw_then_the_kept_ones_and_repeat_with_the_seed():
    gpt = tiny_gpt("c2i")
    seen = []
    runs = [
        generate(gpt, torch.tensor([1, 2, 3]), cfg_scale=2.0, cfg_interval=3, best_of=4, generator=torch.Generator().manual_seed(5),
                 callback=lambda step, total, tokens: seen.append((step, total, tokens.clone())))
        for _ in "ab"
    ]  # fmt: skip
    assert torch.equal(runs[0], runs[1])
    assert [(s, t, tuple(x.shape)) for s, t, x in seen[:16]] == [(s, 16, (3, s)) for s in range(1, 17)]
    first = generate(gpt, torch.tensor([1, 2, 3]).repeat_interleave(4), cfg_scale=2.0, cfg_interval=3,
                     generator=torch.Generator().manual_seed(5))[::4].flatten(1)  # fmt: skip
    assert torch.equal(seen[14][2], first[:, :15])  # while drawing: each image's first candidate
    assert torch.equal(seen[15][2], runs[0].flatten(1))  # at the end: what is returned


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_candidates_are_named(bad):
    with pytest.raises((ValueError, TypeError), match=rf"generate: best_of must be an integer >= 1.*got.*{bad}"):
        generate(tiny_gpt("c2i"), torch.tensor([1]), best_of=bad)
