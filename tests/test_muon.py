"""Muon, the GPTs' optimiser for hidden matrices (gptimg_core/train/muon.py)."""

import pytest
import torch

from gptimg_core.builtin.train.muon import Muon, hidden_matrices, orthogonalize
from gptimg_core.builtin.train.train_gpt import GPTRecipe, TokenPool, _optimizers, train_c2i
from gptimg_core.config import GPTConfig
from gptimg_core.gpt import GPT


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (3, 48, 32)])
def test_orthogonalize_keeps_the_directions_and_brings_singular_values_near_one(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 5
    o = orthogonalize(g)
    assert o.shape == g.shape and o.dtype == g.dtype
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.6 and s.max() < 1.25, s
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    exact = u @ vh  # the polar factor U V^T
    cos = (o * exact).sum((-2, -1)) / (o.norm(dim=(-2, -1)) * exact.norm(dim=(-2, -1)))
    assert (cos > 0.95).all(), cos


def test_orthogonalize_treats_a_stack_as_separate_matrices():
    g = torch.randn(4, 24, 40, generator=torch.Generator().manual_seed(1))
    g[2] *= 100  # one matrix's scale must not leak into the others' normalisation
    stacked = orthogonalize(g)
    for i in range(4):
        torch.testing.assert_close(stacked[i], orthogonalize(g[i]), atol=2e-2, rtol=0)


def test_muon_rejects_a_parameter_that_is_not_a_matrix():
    with pytest.raises(ValueError, match=r"Muon: every parameter must be a matrix \(2-D\), got one of shape \(4,\)"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.01)


def test_muon_fits_a_linear_map():
    gen = torch.Generator().manual_seed(2)
    target, x = 0.1 * torch.randn(16, 32, generator=gen), torch.randn(256, 32, generator=gen)
    w = torch.nn.Parameter(torch.zeros(16, 32))
    opt = Muon([w], lr=0.02)

    def loss() -> torch.Tensor:
        return ((x @ w.T - x @ target.T) ** 2).mean()

    first = loss().item()
    for _ in range(150):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.02 * first


def test_weight_decay_shrinks_the_weights_by_lr_times_decay():
    w = torch.nn.Parameter(torch.ones(8, 8))
    opt = Muon([w], lr=0.1, weight_decay=0.5)
    w.grad = torch.zeros(8, 8)  # no gradient: only the decay acts (zero orthogonalises to zero)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((8, 8), 0.95))


def _t2i() -> GPT:
    return GPT(GPTConfig(dim=32, n_layer=2, n_head=2, vocab_size=16, block_size=9, model_type="t2i", caption_dim=8))


def test_hidden_matrices_are_the_linear_layers_but_the_output():
    gpt = _t2i()
    names = {id(p): n for n, p in gpt.named_parameters()}
    got = sorted(names[id(p)] for p in hidden_matrices(gpt, head="output"))
    per_layer = ["attention.wo", "attention.wqkv", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]
    expected = ["cls_embedding.cap_proj.fc1", "cls_embedding.cap_proj.fc2"]
    expected += [f"layers.{i}.{n}" for i in range(2) for n in per_layer]
    assert got == sorted(f"{n}.weight" for n in expected)


def test_recipe_gives_muon_the_hidden_matrices_and_adamw_the_rest():
    gpt = _t2i()
    params, hidden = list(gpt.parameters()), hidden_matrices(gpt, head="output")
    adamw, muon = _optimizers(params, hidden, GPTRecipe(muon=True, lr=1e-3, muon_lr_scale=5.0))
    in_adamw = {id(p) for group in adamw.param_groups for p in group["params"]}
    in_muon = {id(p) for group in muon.param_groups for p in group["params"]}
    assert isinstance(muon, Muon) and in_muon == {id(p) for p in hidden}
    assert in_adamw.isdisjoint(in_muon) and in_adamw | in_muon == {id(p) for p in params}
    assert adamw.param_groups[0]["lr"] == 1e-3 and muon.param_groups[0]["lr"] == pytest.approx(5e-3)
    (only,) = _optimizers(params, hidden, GPTRecipe(muon=False))
    assert {id(p) for group in only.param_groups for p in group["params"]} == {id(p) for p in params}


def test_train_c2i_with_muon_learns_the_targets_and_moves_every_weight():
    cfg = GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, num_classes=2, cls_token_num=1)
    codes = torch.randint(0, 16, (32, 9), generator=torch.Generator().manual_seed(0))
    pool = TokenPool(codes, torch.full_like(codes, 7), [0, 1] * 16)
    recipe = GPTRecipe(steps=40, batch=16, warmup=2, lr=1e-2, bf16=False, muon=True)
    gpt, _ = train_c2i(cfg, pool, recipe, seed=0)
    torch.manual_seed(0)  # train_c2i's own seeding: the same initial weights
    start = GPT(cfg).state_dict()
    for k, v in gpt.state_dict().items():
        if k in dict(gpt.named_parameters()):
            assert not torch.equal(v, start[k]), f"{k} never moved"
    with torch.no_grad():
        logits = gpt(codes[:4, :-1], 0, cond=torch.tensor([0, 1, 0, 1]))  # (4, 9, 16)
    assert (logits.argmax(-1) == 7).all()
