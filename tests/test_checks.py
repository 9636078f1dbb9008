"""Wrong inputs that used to come back as plausible wrong results (or raw torch errors) are refused by name."""

import math

import numpy as np
import pytest
import torch

from gptimg_core import (
    VQConfig,
    VQModel,
    from_uint8,
    generate,
    img2img_keep,
    inpaint,
    outpaint,
    pixel_mask_to_tokens,
    place_tokens,
    variation_keep,
)
from gptimg_core.checks import check_float, check_int
from gptimg_core.sampling import SamplingOptions

from tiny import caption, tiny_gpt

NAN, INF = math.nan, math.inf
ONE = torch.tensor([1])


def test_check_helpers_refuse_bools_floats_and_non_finite():
    assert check_int("f", "n", 3, minimum=1) == 3
    assert check_int("f", "n", np.int64(3)) == 3
    for bad in (True, 2.0, 2.5, "2", None):
        with pytest.raises(TypeError, match=r"f: n must be an integer"):
            check_int("f", "n", bad)
    assert check_float("f", "x", 2) == 2.0
    for bad in (True, "2", None):
        with pytest.raises(TypeError, match=r"f: x must be a finite number"):
            check_float("f", "x", bad)
    for bad in (NAN, INF, -INF, 10**400):
        with pytest.raises(ValueError, match=r"f: x must be a finite number"):
            check_float("f", "x", bad)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(cfg_scale=INF), r"cfg_scale must be a finite number in \[1.0, 1000.0\].*got inf"),
        (dict(cfg_scale=NAN), r"cfg_scale must be a finite number.*got nan"),
        (dict(cfg_scale="2"), r"cfg_scale must be a finite number.*got str '2'"),
        (dict(temperature=NAN), r"temperature must be a finite number"),
        (dict(temperature=INF), r"temperature must be a finite number"),
        (dict(top_p=NAN), r"top_p must be a finite number"),
        (dict(top_k=True), r"top_k must be an integer.*got bool True"),
        (dict(cfg_interval=2.0), r"cfg_interval must be an integer"),
        (dict(best_of=True), r"best_of must be an integer.*got bool True"),
        (dict(best_of=2.5), r"best_of must be an integer.*got float 2.5"),
        (dict(generator=0), r"generator must be a torch.Generator"),
        (dict(seed=1.5), r"seed must be an integer"),
        (dict(callback=3), r"callback must be callable"),
    ],
)
def test_generate_refuses_non_finite_bool_and_float_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match="generate: " + match):
        generate(tiny_gpt("c2i"), ONE, **kwargs)


@pytest.mark.parametrize("fn", ["inpaint", "outpaint"])
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(cfg_scale=INF), r"cfg_scale must be a finite number"),
        (dict(top_k=True), r"top_k must be an integer"),
        (dict(particles=True), r"particles must be an integer"),
        (dict(particles=2.5), r"particles must be an integer"),
        (dict(passes=1.5), r"passes must be an integer"),
        (dict(passes=0), r"passes must be an integer >= 1"),
    ],
)
def test_editing_refuses_the_same_arguments_with_the_same_words(fn, kwargs, match):
    gpt = tiny_gpt("c2i")
    codes = torch.zeros(1, 4, 4, dtype=torch.long)
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, 2:] = False
    with pytest.raises((ValueError, TypeError), match="inpaint: " + match):
        if fn == "inpaint":
            inpaint(gpt, codes, keep, ONE, **kwargs)
        else:
            outpaint(gpt, codes[:, :2], ONE, **kwargs)


def test_sampling_options_check_is_the_one_place():
    with pytest.raises(TypeError, match=r"where: top_k must be an integer"):
        SamplingOptions(top_k=True).check("where")
    SamplingOptions(cfg_scale=1, temperature=0, top_k=np.int64(3)).check("where")


@pytest.mark.parametrize("bad", [NAN, INF])
def test_non_finite_caption_features_are_refused(bad):
    gpt = tiny_gpt("t2i")
    feats, mask = caption(1, [3])
    feats[0, -1, 0] = bad
    with pytest.raises(ValueError, match=r"generate: cond holds 1 non-finite values"):
        generate(gpt, feats, cond_mask=mask)
    good, _ = caption(1, [3])
    with pytest.raises(ValueError, match=r"inpaint: uncond holds 1 non-finite values"):
        inpaint(gpt, torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.bool), good, uncond=feats)


def test_condition_type_mistakes_are_named():
    gpt = tiny_gpt("t2i")
    feats, mask = caption(3, [3, 3, 3])
    with pytest.raises(ValueError, match=r"generate: uncond has batch 2, expected 1 or 3"):
        generate(gpt, feats, uncond=feats[:2])
    with pytest.raises(ValueError, match=r"generate: cond_mask marks no valid token in rows \[1\]"):
        generate(gpt, feats, cond_mask=torch.tensor([[True] * 6, [False] * 6, [True] * 6]))
    with pytest.raises(TypeError, match=r"generate: .*c2i.*cond must be a 1-D integer tensor.*got str '3'"):
        generate(tiny_gpt("c2i"), "3")
    with pytest.raises(TypeError, match=r"generate: .*c2i.*cond must be a 1-D integer tensor"):
        generate(tiny_gpt("c2i"), torch.tensor([True]))
    with pytest.raises(ValueError, match=r"generate: cond holds class ids \[1000000000000000000000000000000\]"):
        generate(tiny_gpt("c2i"), [10**30])
    assert generate(tiny_gpt("c2i"), [1, 2], generator=torch.Generator().manual_seed(0)).shape == (2, 4, 4)


def test_a_model_that_is_not_a_gpt_is_named():
    codes = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(
        TypeError, match=r"generate: gpt must be an image-token model \(load_gpt's result\), got NoneType"
    ):
        generate(None, ONE)
    with pytest.raises(TypeError, match=r"inpaint: gpt must be an image-token model"):
        inpaint("model.safetensors", codes, codes > 0, ONE)
    with pytest.raises(TypeError, match=r"outpaint: gpt must be an image-token model"):
        outpaint(None, codes, ONE)


def test_outpaint_and_place_tokens_name_1d_codes():
    with pytest.raises(ValueError, match=r"outpaint: codes must be an integer tensor \(B, h, w\)"):
        outpaint(tiny_gpt("c2i"), torch.zeros(16, dtype=torch.long), ONE)
    with pytest.raises(ValueError, match=r"place_tokens: codes must be an integer tensor"):
        place_tokens(torch.zeros(4, 4, dtype=torch.long), (4, 4))
    with pytest.raises(TypeError, match=r"place_tokens: top must be an integer"):
        place_tokens(torch.zeros(1, 2, 2, dtype=torch.long), (4, 4), top=1.5)
    with pytest.raises(TypeError, match=r"variation_keep: keep_rows must be an integer"):
        variation_keep((1, 4, 4), True)
    with pytest.raises(ValueError, match=r"img2img_keep: strength must be a finite number"):
        img2img_keep((1, 4, 4), NAN)


def test_pixel_mask_to_tokens_refuses_nan_masks_and_bad_downsample():
    m = torch.zeros(8, 8)
    with pytest.raises(ValueError, match=r"pixel_mask_to_tokens: downsample must be an integer >= 1"):
        pixel_mask_to_tokens(m, 0)
    with pytest.raises(TypeError, match=r"pixel_mask_to_tokens: downsample must be an integer"):
        pixel_mask_to_tokens(m, 4.0)
    m[0, 0] = NAN
    with pytest.raises(ValueError, match=r"pixel_mask_to_tokens: mask holds 1 non-finite values"):
        pixel_mask_to_tokens(m, 4)
    with pytest.raises(ValueError, match=r"mask values must lie in \[0, 1\].*divide a 0..255 mask by 255"):
        pixel_mask_to_tokens(torch.full((8, 8), 255.0), 4)
    with pytest.raises(ValueError, match=r"pixel_mask_to_tokens: mask is empty"):
        pixel_mask_to_tokens(torch.zeros(0, 8), 4)


@pytest.fixture(scope="module")
def vq():
    torch.manual_seed(0)
    cfg = VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=16,
                   embed_dim=4, norm_groups=4)  # fmt: skip
    return VQModel(cfg).eval()


def test_vq_encode_checks_dtype_channels_range_and_finite(vq):
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert vq.encode(x).shape == (1, 4, 4)
    with pytest.raises(TypeError, match=r"VQModel.encode: pixels must be a float tensor in \[-1, 1\], got torch.uint8"):
        vq.encode(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"VQModel.encode: pixels must be a \(B, 3, H, W\)"):
        vq.encode(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"VQModel.encode: pixels holds 3 non-finite"):
        vq.encode(torch.where(torch.arange(64).view(1, 1, 8, 8) == 0, NAN, x))
    with pytest.raises(ValueError, match=r"got values in \[0, 255\]; for a 0..255 image: x / 127.5 - 1"):
        vq.encode(torch.arange(192).float().view(1, 3, 8, 8).clamp(max=255) * 255 / 191)
    with pytest.raises(ValueError, match=r"VQModel.encode: pixels is empty"):
        vq.encode(torch.zeros(0, 3, 8, 8))
    with pytest.raises(ValueError, match=r"VQModel.encode: pixels is empty"):
        vq.encode(torch.zeros(1, 3, 0, 8))


def test_from_uint8_refuses_float_arrays():
    assert from_uint8(np.full((2, 2, 3), 255, np.uint8)).max() == 1.0
    with pytest.raises(TypeError, match=r"from_uint8: images must be an integer \(uint8\) array.*float32"):
        from_uint8(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"from_uint8: images must hold 0..255, got values in \[300, 300\]"):
        from_uint8(np.full((2, 2, 3), 300))
