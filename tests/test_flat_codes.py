"""The VQ recipe's flat codes (VQRecipe.flat_codes): each flat palette colour gets its own code while training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gptimg_core.config import VQConfig
from gptimg_core.shapes.world import COLOUR_NAMES
from gptimg_core.train.canonical import flat_colours
from gptimg_core.train.data import text_batch
from gptimg_core.train.train_vq import VQRecipe, _restart_dead, quantize, train_vq
from gptimg_core.vq import VQModel

# downsample 8, as the built-in VQ
TINY = VQConfig(ch=8, ch_mult=(1, 2, 2, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=64,
                embed_dim=4, image_size=64, norm_groups=4)  # fmt: skip


def test_quantize_takes_the_flat_code_and_sends_its_gradient_to_the_codebook():
    torch.manual_seed(0)
    vq = VQModel(TINY)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    flat = torch.full((2, 3, 3), -1)
    flat[0, 0, 0], flat[1, 2, 1] = 5, 0
    zq, _, codes = quantize(vq, z, 0.25, flat)
    _, _, nearest = quantize(vq, z, 0.25)
    assert codes[0, 0, 0] == 5 and codes[1, 2, 1] == 0
    free = flat < 0
    assert torch.equal(codes[free], nearest[free])  # the other tokens: the nearest code, as without flat codes
    assert torch.allclose(zq[0, :, 0, 0], vq.quantize.codebook()[5])  # the code itself, not a straight-through
    (zq * torch.randn_like(zq)).sum().backward()
    assert z.grad[0, :, 0, 0].abs().sum() == 0 and z.grad[1, :, 2, 1].abs().sum() == 0  # no gradient to the encoder
    assert z.grad[0, :, 1, 1].abs().sum() > 0  # a free token's gradient passes straight through
    assert vq.quantize.embedding.weight.grad[5].abs().sum() > 0  # the flat code learns from the decoder


def test_flat_tokens_commit_with_their_own_weight():
    torch.manual_seed(0)
    vq = VQModel(TINY)
    z = torch.randn(1, 4, 2, 2)
    every = torch.tensor([[[1, 2], [3, 4]]])  # every token flat
    book = vq.quantize.codebook()
    gap = F.mse_loss(book[every.flatten()], F.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1))
    for flat_beta in (0.25, 4.0):
        _, loss, _ = quantize(vq, z, 0.25, every, flat_beta)
        assert torch.allclose(loss, (1 + flat_beta) * gap)  # codebook term + flat_beta x commitment term


def test_restarts_leave_the_flat_codes_and_seed_from_edge_tokens_only():
    torch.manual_seed(0)
    vq = VQModel(TINY)
    before = vq.quantize.embedding.weight.detach().clone()
    z = torch.randn(2, 4, 4, 4)
    z[:, :, :2] = torch.tensor([1.0, 0, 0, 0])[None, :, None, None]  # the top half's latents: one point
    where = torch.ones(2, 4, 4, dtype=torch.bool)
    where[:, :2] = False  # ... and those are the flat tokens
    used = torch.zeros(TINY.codebook_size, dtype=torch.bool)
    used[: len(COLOUR_NAMES)] = True
    _restart_dead(vq, z, used, where)
    after = vq.quantize.embedding.weight.detach()
    assert torch.equal(after[: len(COLOUR_NAMES)], before[: len(COLOUR_NAMES)])
    moved = F.normalize(after[len(COLOUR_NAMES) :], dim=-1)
    assert (moved @ torch.tensor([1.0, 0, 0, 0])).max() < 0.99  # none seeded on the flat tokens' latent


def test_flat_codes_need_codes_beyond_the_palette():
    small = VQConfig(**{**TINY.__dict__, "codebook_size": len(COLOUR_NAMES)})
    with pytest.raises(ValueError, match=r"train_vq: VQRecipe.flat_codes .* codebook_size 8"):
        train_vq(small, VQRecipe(steps=1, batch=1, flat_codes=True))


@pytest.mark.slow
def test_a_vq_trained_with_flat_codes_encodes_flat_patches_to_their_colours_code():
    x, _ = text_batch(np.random.default_rng(9), 32, split="any")
    colours = flat_colours(x, 8)

    def own_code_share(flat_codes: bool) -> float:
        # 40 crop steps at a high lr, no restarts: enough for commitment to pull flat latents onto their codes
        recipe = VQRecipe(steps=40, batch=4, lr=3e-3, restart_every=10**6, gan_start=1.0, crop_until=1.0,
                          flat_codes=flat_codes, flat_beta=4.0)  # fmt: skip
        vq, _ = train_vq(TINY, recipe, seed=0)
        codes = vq.encode(x)
        return float((codes[colours >= 0] == colours[colours >= 0]).float().mean())

    with_flat, without = own_code_share(True), own_code_share(False)
    assert with_flat > 0.1 and with_flat > 10 * without, (with_flat, without)  # commitment pulls them onto their codes
