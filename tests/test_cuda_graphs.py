"""Fixed-size decode passes (cuda_graphs.py, GPT.step): the same tokens as the plain passes on every device,
ready to capture (no host sync, nothing position-dependent baked in), and replayed from CUDA graphs on a GPU."""

import pytest
import torch

from gptimg_core import compiled, cuda_graphs, generate, inpaint
from gptimg_core.token_model import Condition

from tiny import caption, tiny_gpt

on_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def _pair(kind: str, device: str = "cpu", **kw):
    plain, fixed = tiny_gpt(kind, **kw).to(device), tiny_gpt(kind, **kw).to(device)
    plain.cuda_graphs, fixed.cuda_graphs = False, True
    return plain, fixed


def _spy_states(monkeypatch) -> list:
    """Every GraphedPasses made from now on (to read how many passes each served)."""
    made, real = [], cuda_graphs.GraphedPasses.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(cuda_graphs.GraphedPasses, "__init__", init)
    return made


def _same_tokens_everywhere(plain, fixed, cond, extra):
    settings = (
        {"top_k": 1}, {}, {"cfg_interval": 5}, {"decoding": "sjd"}, {"decoding": "sjd", "window": 20},
        {"decoding": "sjd", "cfg_interval": 5}, {"decoding": "sjd", "window": 3}, {"decoding": "jacobi"},
        {"decoding": "jacobi", "window": 1}, {"best_of": 3},
    )  # fmt: skip
    for kw in settings:
        runs = [generate(m, cond, generator=torch.Generator().manual_seed(3), **extra, **kw) for m in (plain, fixed)]
        assert torch.equal(*runs), kw
    codes = generate(plain, cond, generator=torch.Generator().manual_seed(4), **extra)
    keep = torch.ones_like(codes, dtype=torch.bool)
    keep[:, 2:4, 2:5] = False  # kept runs fed in one pass, some longer than the largest bucket
    for decoding in ("ar", "sjd"):
        runs = [inpaint(m, codes, keep, cond, seed=5, decoding=decoding, **extra) for m in (plain, fixed)]
        assert torch.equal(*runs) and torch.equal(runs[0][keep], codes[keep]), decoding


@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_fixed_passes_draw_the_tokens_plain_passes_draw(kind, monkeypatch):
    made = _spy_states(monkeypatch)
    plain, fixed = _pair(kind, grid=8, n_kv_head=2)  # 64 tokens: kept runs past 32; grouped kv heads
    if kind == "c2i":
        cond, extra = torch.tensor([1, 7]), {}
    else:  # a padded caption: the fixed passes' mask keeps its padding out
        cond, mask = caption(2, [6, 3])
        extra = {"cond_mask": mask}
    _same_tokens_everywhere(plain, fixed, cond, extra)
    assert made and all(not g.capture for g in made)  # on CPU the fixed passes run, uncaptured
    shapes = {key for g in made for key in g.passes}
    assert {T for _, T, _ in shapes} >= {1, 2, 4, 8, 16, 32}  # one-token steps, SJD's windows, kept runs
    assert {R for R, _, _ in shapes} >= {2, 4}  # guided rows, then the conditional half alone (cfg_interval)


def test_a_fixed_pass_gives_the_plain_logits_whatever_its_padding():
    plain, fixed = _pair("c2i", n_kv_head=2)
    cond = plain.condition(torch.tensor([3]), None, None, None, guided=True, where="test")
    a, b = plain.start(cond), fixed.start(cond)
    torch.testing.assert_close(a.prefill(), b.prefill())
    tokens = torch.randint(0, plain.vocab_size, (2, 13))
    for t, n in ((0, 3), (3, 1), (4, 5), (2, 9)):  # rewinds too: a feed at t overwrites what sits past t
        fed = tokens[:, t : t + n]
        torch.testing.assert_close(a.feed(fed, t), b.feed(fed, t), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.feed(fed, t, last_only=True), b.feed(fed, t, last_only=True), rtol=1e-5, atol=1e-5)
    assert b.graphs.passes and a.graphs is None
    assert b.cache.max_len == cuda_graphs.cache_len(fixed.seq_len) and b.cache.max_len % 16 == 0


def test_graphs_are_wanted_on_cuda_alone_unless_asked():
    gpt = tiny_gpt("c2i")
    assert gpt.cuda_graphs is None and not cuda_graphs.wanted(gpt)  # CPU: plain passes
    gpt.cuda_graphs = True
    assert cuda_graphs.wanted(gpt)
    state = gpt.start(Condition(torch.tensor([1]), None, 1))
    assert state.graphs.serves(cuda_graphs.BUCKETS[-1]) and not state.graphs.serves(cuda_graphs.BUCKETS[-1] + 1)
    gpt.cuda_graphs = False  # what a failed capture sets: the state goes back to plain passes
    assert not state.graphs.serves(1)


def test_a_replay_that_differs_from_its_pass_turns_graphs_off_and_returns_the_right_logits(caplog):
    """The first-replay check (the safety net of a captured graph), fed what a broken graph would give."""
    gpt = tiny_gpt("c2i")
    gpt.cuda_graphs = True
    state = gpt.start(gpt.condition(torch.tensor([2]), None, None, None, guided=True, where="test"))
    state.prefill()
    passes = state.graphs
    tokens = torch.tensor([[5], [5]])
    good = passes(tokens, state.T, True)  # records the pass's buffers (uncaptured here)
    p = passes.passes[(2, 1, True)]
    assert torch.equal(passes._check(p, good), good) and gpt.cuda_graphs is True  # an equal replay passes
    p.checked = False
    with caplog.at_level("WARNING", logger="gptimg_core.cuda_graphs"):
        out = passes._check(p, good + 1.0)  # a replay off by one logit everywhere
    assert torch.equal(out, good)  # the uncaptured pass's logits are what the decoder gets
    assert gpt.cuda_graphs is False and not passes.passes and not passes.serves(1)
    assert "CUDA graphs turned off for this model: a replayed pass differed" in caplog.text


@pytest.mark.slow  # compiles: seconds
@pytest.mark.skipif(not compiled.can_compile(), reason="torch.compile needs a C++ compiler on CPU")
def test_a_fixed_pass_can_be_captured_once_for_every_position():
    """What a CUDA graph needs, checked on CPU by torch.compile: one graph with no break (no host sync such as
    .item() or a host-to-device copy) that serves every position without recompiling (no position read on the
    host and baked in)."""
    gpt = tiny_gpt("t2i", n_kv_head=2)
    gpt.cuda_graphs = True
    cond, mask = caption(1, [4])
    state = gpt.start(gpt.condition(cond, mask, None, None, guided=True, where="test"))
    state.prefill()
    passes = state.graphs
    p = passes._buffers(2, 4, True, gpt.device)
    step = torch.compile(passes._run, fullgraph=True, dynamic=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for starts in ([6, 6], [7, 7], [11, 8]):  # the last: each row at its own positions
            p.start.copy_(torch.tensor(starts))
            p.pick.fill_(2)
            torch.testing.assert_close(step(p), passes._run(p))


@on_gpu
def test_replayed_graphs_draw_the_tokens_plain_passes_draw(monkeypatch):
    made = _spy_states(monkeypatch)
    plain, graphed = _pair("t2i", "cuda", grid=8)
    graphed.cuda_graphs = None  # the default on CUDA
    cond, mask = caption(2, [6, 3])
    _same_tokens_everywhere(plain, graphed, cond.cuda(), {"cond_mask": mask.cuda()})
    assert graphed.cuda_graphs is None  # no capture failed and no replay differed
    assert made and all(g.capture for g in made) and sum(g.replays for g in made) > 100


@on_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_replayed_passes_give_the_logits_of_the_same_passes_uncaptured(dtype):
    gpt = tiny_gpt("t2i", n_kv_head=2).to("cuda", dtype)
    cond, mask = caption(1, [4])
    rows = gpt.condition(cond.cuda(), mask.cuda(), None, None, guided=True, where="test")
    graphed, uncaptured = gpt.start(rows), gpt.start(rows)
    uncaptured.graphs = cuda_graphs.GraphedPasses(uncaptured, capture=False)
    torch.testing.assert_close(graphed.prefill(), uncaptured.prefill())
    tokens = torch.randint(0, gpt.vocab_size, (2, 16), device="cuda")
    # records, replays, rewinds; then the rows at their own positions (a tensor of starts)
    for t, n in ((0, 1), (1, 1), (2, 1), (3, 3), (6, 3), (4, 3), (7, 1), (8, 1), ([8, 5], 3), ([9, 7], 3)):
        if isinstance(t, list):
            fed, t = torch.stack([tokens[r, s : s + n] for r, s in enumerate(t)]), torch.tensor(t, device="cuda")
        else:
            fed = tokens[:, t : t + n]
        for last_only in (False, True):
            a, b = graphed.feed(fed, t, last_only=last_only), uncaptured.feed(fed, t, last_only=last_only)
            torch.testing.assert_close(a, b, rtol=2e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-2)
    assert gpt.cuda_graphs is None and graphed.graphs.replays > 0 and uncaptured.graphs.replays == 0
