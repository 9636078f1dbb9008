"""Token-level editing: kept tokens unchanged, mask conversion, look-ahead rescoring, placement."""

import pytest
import torch

from gptimg_core import img2img_keep, inpaint, outpaint, pixel_mask_to_tokens, place_tokens, variation_keep
from gptimg_core.conditioning import prepare_condition
from gptimg_core.editing import score_known, token_logp
from gptimg_core.particles import FILL_WEIGHT, particle_fills, pick
from gptimg_core.sampling import SamplingOptions

from tiny import caption, tiny_gpt


def _codes(b=2, seed=0):
    return torch.randint(0, 64, (b, 4, 4), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_inpaint_keeps_every_known_token(kind, cfg):
    gpt = tiny_gpt(kind)
    codes = _codes()
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(2, 4, 4, generator=g) < 0.5
    if kind == "c2i":
        cond = {"cond": torch.tensor([1, 2])}
    else:
        feats, mask = caption(2, [2, 4])
        cond = {"cond": feats, "cond_mask": mask}
    for kw in ({}, {"particles": 3, "passes": 2}):
        out = inpaint(gpt, codes, keep, **cond, cfg_scale=cfg, generator=g, **kw)
        assert out.shape == codes.shape
        assert torch.equal(out[keep], codes[keep])
        assert not torch.equal(out[~keep], codes[~keep])  # random codes are very unlikely to be redrawn


def test_inpaint_with_nothing_masked_returns_input_and_everything_masked_generates():
    gpt = tiny_gpt("c2i")
    codes = _codes(1)
    same = inpaint(gpt, codes, torch.ones(1, 4, 4, dtype=torch.bool), torch.tensor([3]))
    assert torch.equal(same, codes)
    out = inpaint(gpt, codes, torch.zeros(1, 4, 4, dtype=torch.bool), torch.tensor([3]), top_k=1)
    from gptimg_core import generate

    assert torch.equal(out, generate(gpt, torch.tensor([3]), top_k=1))


def test_passes_keep_the_best_fill_of_all_rounds():
    gpt = tiny_gpt("c2i", seed=4)
    codes = _codes(1, seed=3)
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, 1, 1:3] = False  # a hole with known tokens after it
    cond = torch.tensor([4])
    out = inpaint(
        gpt, codes, keep, cond, cfg_scale=1.0, particles=3, passes=4, generator=torch.Generator().manual_seed(7)
    )
    # redraw the same four rounds of three particles and score every fill by the particles' own rule
    c = prepare_condition(gpt, cond, None, None, None, guided=False, where="test")
    g, k = torch.Generator().manual_seed(7), keep.view(1, -1)
    rounds = [
        particle_fills(gpt, c, SamplingOptions(cfg_scale=1.0), codes.view(1, -1), k, 3, generator=g) for _ in "abcd"
    ]
    fills = torch.cat([f for f, _, _ in rounds])  # (12, N)
    scores = torch.cat([(w + FILL_WEIGHT * ll).flatten() for _, w, ll in rounds])  # (12,)
    assert len(set(scores.tolist())) > 1  # the fills really differ in score
    assert torch.equal(out.view(-1), fills[int(scores.argmax())])


def test_candidates_are_particles_of_one_round():
    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [2, 4])
    codes = _codes(2)
    keep = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.5
    out = inpaint(gpt, codes, keep, feats, cond_mask=mask, cfg_scale=2.0, particles=5,
                  generator=torch.Generator().manual_seed(3))  # fmt: skip
    c = prepare_condition(gpt, feats, mask, None, None, guided=True, where="test")
    direct, _ = pick(*particle_fills(gpt, c, SamplingOptions(cfg_scale=2.0), codes.view(2, -1), keep.view(2, -1), 5,
                                     generator=torch.Generator().manual_seed(3)))  # fmt: skip
    assert torch.equal(out.view(2, -1), direct)


def test_without_kept_tokens_after_the_hole_one_fill_is_drawn():
    """Variations keep only the first rows: nothing follows the hole to weigh particles by, so the default
    8 candidates draw exactly what one fill draws (and cost what it costs)."""
    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [2, 4])
    codes, keep = _codes(2), variation_keep((2, 4, 4), 2)
    settings = dict(cond_mask=mask, cfg_scale=2.0, temperature=1.5)
    outs = [inpaint(gpt, codes, keep, feats, particles=k, generator=torch.Generator().manual_seed(4), **settings)
            for k in (8, 1)]  # fmt: skip
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0][keep], codes[keep])
    keep[:, 3, 3] = True  # one kept token after the hole: now the particles run, and draw otherwise
    many = inpaint(gpt, codes, keep, feats, generator=torch.Generator().manual_seed(4), **settings)
    assert not torch.equal(many, outs[1])


def test_token_logp_is_the_training_loss_per_token():
    from gptimg_core.train.train_gpt import token_loss

    gpt = tiny_gpt("t2i")
    feats, mask = caption(2, [2, 4])
    codes = _codes(2).view(2, -1)
    c = prepare_condition(gpt, feats, mask, None, None, guided=False, where="test")
    lp = token_logp(gpt, c, codes)  # (2, 16)
    assert lp.shape == (2, 16) and (lp < 0).all()
    with torch.no_grad():
        key_ok = torch.cat([c.mask, torch.ones(2, 16, dtype=torch.bool)], 1)[:, None, None]  # (B, 1, 1, S)
        loss = token_loss(gpt, c.rows, codes, codes, key_ok)  # mean cross-entropy, an independent path
    torch.testing.assert_close(-lp.mean(), loss)
    other = codes.clone()
    other[:, 8] = (other[:, 8] + 1) % 64
    lq = token_logp(gpt, c, other)
    assert torch.equal(lq[:, :8], lp[:, :8]) and not torch.equal(lq[:, 8], lp[:, 8])  # causal: only 8.. move


def test_score_known_counts_only_tokens_after_the_hole():
    gpt = tiny_gpt("c2i")
    codes = _codes(1).view(1, -1)
    c = prepare_condition(gpt, torch.tensor([1]), None, None, None, guided=False, where="test")
    keep = torch.ones(1, 16, dtype=torch.bool)
    keep[0, 10] = False
    other = codes.clone()
    other[0, :5] = (other[0, :5] + 1) % 64  # changing tokens before the hole changes the context only
    s = score_known(gpt, c, codes, keep)
    assert s.shape == (1,) and s.item() < 0
    keep_all_after = keep.clone()
    keep_all_after[0, 15] = False
    assert score_known(gpt, c, codes, keep_all_after).item() > s.item()  # fewer scored tokens


def test_pixel_mask_to_tokens_modes_and_grow():
    mask = torch.zeros(1, 32, 32)
    mask[0, 0, 0] = 1  # one pixel in token (0, 0)
    mask[0, 16:24, 16:20] = 1  # half of token (2, 2)
    anyo = pixel_mask_to_tokens(mask, 8)
    assert anyo.shape == (1, 4, 4) and anyo.sum() == 2 and anyo[0, 0, 0] and anyo[0, 2, 2]
    half = pixel_mask_to_tokens(mask, 8, mode="threshold", threshold=0.5)
    assert half.sum() == 1 and half[0, 2, 2]
    assert pixel_mask_to_tokens(mask, 8, mode="threshold", threshold=0.6).sum() == 0
    grown = pixel_mask_to_tokens(mask, 8, mode="threshold", grow=1)
    assert grown[0, 1:4, 1:4].all() and grown.sum() == 9
    with pytest.raises(ValueError, match="pixel_mask_to_tokens: mask size 30x32 is not a multiple"):
        pixel_mask_to_tokens(torch.zeros(32, 30), 8)


def test_place_tokens_and_outpaint():
    small = _codes(1)[:, :2, :3]
    placed, keep = place_tokens(small, (4, 4), top=1, left=2)
    assert keep.sum() == 4  # one column falls outside
    assert torch.equal(placed[0, 1:3, 2:4], small[0, :, :2])
    shifted, keep2 = place_tokens(small, (4, 4), top=-1, left=0)
    assert torch.equal(shifted[0, 0, :3], small[0, 1]) and keep2.sum() == 3
    with pytest.raises(ValueError, match="falls entirely outside"):
        place_tokens(small, (4, 4), top=4)
    gpt = tiny_gpt("c2i")
    out = outpaint(gpt, small, torch.tensor([2]), top=1, left=1)
    assert out.shape == (1, 4, 4) and torch.equal(out[0, 1:3, 1:4], small[0])


def test_variation_and_img2img_masks():
    keep = variation_keep((2, 4, 4), 3)
    assert keep[:, :3].all() and not keep[:, 3:].any()
    k = img2img_keep((2, 4, 4), 0.25, generator=torch.Generator().manual_seed(0))
    assert (~k).sum(dim=(1, 2)).tolist() == [4, 4]
    assert not torch.equal(k[0], k[1])
    with pytest.raises(ValueError, match=r"strength must be a finite number in \[0.0, 1.0\]"):
        img2img_keep((1, 4, 4), 1.5)


@pytest.mark.parametrize(
    "codes,keep,match",
    [
        (
            torch.zeros(1, 5, 5, dtype=torch.long),
            torch.ones(1, 5, 5, dtype=torch.bool),
            r"codes form a 5x5 grid but the model draws 4x4",
        ),
        (torch.full((1, 4, 4), 64), torch.ones(1, 4, 4, dtype=torch.bool), r"codes must lie in \[0, 64\)"),
        (torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(1, 4, 4), r"keep must be a bool tensor"),
    ],
)
def test_inpaint_errors(codes, keep, match):
    with pytest.raises(ValueError, match=f"inpaint: {match}"):
        inpaint(tiny_gpt("c2i"), codes, keep, torch.tensor([1]))


def test_particle_progress_ends_on_the_kept_fills_once_per_step():
    gpt = tiny_gpt("c2i")
    codes = _codes(2)
    keep = torch.ones(2, 4, 4, dtype=torch.bool)
    keep[:, 1, 1:3] = False  # a hole with kept tokens after it, so the particles run
    seen = []
    out = inpaint(gpt, codes, keep, torch.tensor([1, 2]), particles=3, passes=2, generator=torch.Generator().manual_seed(4),
                  callback=lambda step, total, tokens: seen.append((step, total, tokens.clone())))  # fmt: skip
    steps = [s for s, _, _ in seen]
    assert steps == sorted(set(steps)) and steps[-1] == seen[-1][1] == 2 * 16  # each step once, the last at the end
    assert torch.equal(seen[-1][2], out.view(2, -1))  # the last report shows what is returned
    assert all(tokens.shape[0] == 2 for _, _, tokens in seen)  # one row per image, never per particle
