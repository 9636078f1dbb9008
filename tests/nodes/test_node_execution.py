"""Every node executed as ComfyUI executes it, on the built-in model: outputs, layouts, and that the nodes
are thin (the same numbers as calling gptimg_core directly)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gptimg_core import compiled

SAMPLING = dict(seed=5, cfg=4.0, temperature=1.0, top_k=0, top_p=1.0)
PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def t2i_cond(comfy, loaded):
    (cond,), _ = comfy.run(
        "GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt=PROMPT, negative_prompt=""
    )
    return cond


def sample(comfy, model, cond, vq=None, batch_size=1, **over):
    settings = {**SAMPLING, "batch_size": batch_size, "cfg_interval": -1, "cfg_schedule": "constant", **over}
    (tokens,), _ = comfy.run("GPTImgSampler", model=model, positive=cond, vq=vq, **settings)
    return tokens


@pytest.fixture(scope="module")
def picture(comfy, loaded, t2i_cond):
    """Tokens of one generated image, and its decoded IMAGE."""
    tokens = sample(comfy, loaded["t2i"], t2i_cond, loaded["vq"])
    (image,), _ = comfy.run("GPTImgVQDecode", vq=loaded["vq"], tokens=tokens)
    return tokens, image


def test_loaders_describe_what_they_loaded(comfy):
    (model,), ui = comfy.run("GPTImgLoadModel", ckpt_name="builtin c2i", dtype="fp32", n_head=0, grid=0)
    assert model.gpt.kind == "c2i" and len(model.class_names) == model.gpt.num_classes == 48
    assert "class-to-image (c2i), 48 classes" in ui["text"][0] and "8x8 token grid" in ui["text"][0]
    (vq,), ui = comfy.run("GPTImgLoadVQ", vq_name="builtin")
    assert vq.downsample == 8 and vq.codebook_size == 1024 and len(vq.vq_id) == 16
    assert vq.preview.palette.shape == (1024, 3) and "VQ-8, 1024 codes" in ui["text"][0]
    (enc,), ui = comfy.run("GPTImgLoadTextEncoder", encoder_name="builtin")
    assert enc.encoder.dim == 64 and "T5 encoder" in ui["text"][0]


@pytest.mark.skipif(not compiled.can_compile(), reason="torch.compile needs a C++ compiler on CPU")
def test_load_model_with_compiled_steps_samples_the_same_tokens(comfy, loaded, t2i_cond, picture):
    (model,), ui = comfy.run("GPTImgLoadModel", ckpt_name="builtin t2i", dtype="fp32", n_head=0, grid=0, compile=True)
    assert model.gpt.compile_steps and "decode steps compiled" in ui["text"][0]
    assert torch.equal(sample(comfy, model, t2i_cond, loaded["vq"]).codes, picture[0].codes)
    assert comfy.core("compiled")._STEPS.get(model.gpt) is not None  # the steps did run compiled (the pack's own core)
    with pytest.raises(Exception, match=r"Load GPT Image Model: compile: 'yes' is not true or false"):
        comfy.run("GPTImgLoadModel", ckpt_name="builtin t2i", dtype="fp32", n_head=0, grid=0, compile="yes")


def test_load_vq_in_bf16_decodes_close_to_fp32(comfy, picture):
    tokens, image = picture
    (vq,), ui = comfy.run("GPTImgLoadVQ", vq_name="builtin", dtype="bf16")
    assert vq.vq.post_quant_conv.weight.dtype == torch.bfloat16 and "bf16" in ui["text"][0]
    (half,), _ = comfy.run("GPTImgVQDecode", vq=vq, tokens=tokens)
    assert half.shape == image.shape and half.dtype == image.dtype
    assert 0 < (half - image).abs().mean() < 2 / 255
    with pytest.raises(Exception, match=r"Load VQ Tokenizer: dtype: 'int8' is not one of fp32, bf16"):
        comfy.run("GPTImgLoadVQ", vq_name="builtin", dtype="int8")


def test_encode_prompt(comfy, loaded, t2i_cond):
    c = loaded["t2i"].gpt.cfg
    assert t2i_cond.kind == "t2i" and t2i_cond.cond.shape == (1, c.cls_token_num, c.caption_dim)
    assert t2i_cond.mask.dtype == torch.bool and t2i_cond.mask[0, -1] and t2i_cond.uncond is None
    (neg,), _ = comfy.run(
        "GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt=PROMPT, negative_prompt="a star"
    )
    assert neg.uncond.shape == neg.cond.shape and neg.uncond_mask.shape == neg.mask.shape


@pytest.mark.parametrize(("text", "label"), [("5", 5), ("red circle", 0), ("  Green   SQUARE ", 7)])
def test_class_label(comfy, loaded, text, label):
    (cond,), _ = comfy.run("GPTImgClassLabel", model=loaded["c2i"], **{"class": text})
    assert cond.kind == "c2i" and cond.cond.tolist() == [label]
    assert cond.text == loaded["c2i"].class_names[label]


def test_sampler_is_a_thin_wrapper_over_generate(comfy, loaded, t2i_cond):
    model = loaded["t2i"]
    tokens = sample(comfy, model, t2i_cond, loaded["vq"], batch_size=2)
    assert tokens.codes.shape == (2, 8, 8) and tokens.codes.dtype == torch.int64 and tokens.codes.device.type == "cpu"
    assert tokens.vq_id == loaded["vq"].vq_id and tokens.downsample == 8 and tokens.codebook_size == 1024
    core = comfy.core()
    direct = core.generate(
        model.gpt, t2i_cond.cond.expand(2, -1, -1), cond_mask=t2i_cond.mask.expand(2, -1), cfg_scale=4.0,
        temperature=1.0, top_k=0, top_p=1.0, best_of=1, seed=SAMPLING["seed"],
    )  # fmt: skip
    assert torch.equal(tokens.codes, direct)
    assert torch.equal(sample(comfy, model, t2i_cond, batch_size=2).codes, direct)  # previews change nothing
    assert not torch.equal(sample(comfy, model, t2i_cond, batch_size=2, seed=6).codes, direct)


def test_sampler_options_reach_the_core(comfy, loaded, t2i_cond):
    model = loaded["t2i"]
    greedy = sample(comfy, model, t2i_cond, top_k=1, seed=1)
    assert torch.equal(greedy.codes, sample(comfy, model, t2i_cond, top_k=1, seed=2).codes)
    linear = sample(comfy, model, t2i_cond, cfg_schedule="linear", cfg_interval=10, top_p=0.5, temperature=0.7)
    assert linear.codes.shape == (1, 8, 8) and linear.vq_id is None and linear.downsample is None


def test_sampler_candidates_reach_the_core(comfy, loaded, t2i_cond):
    model = loaded["t2i"]
    tokens = sample(comfy, model, t2i_cond, batch_size=2, candidates=3)
    direct = comfy.core().generate(
        model.gpt, t2i_cond.cond.expand(2, -1, -1), cond_mask=t2i_cond.mask.expand(2, -1), cfg_scale=4.0,
        temperature=1.0, top_k=0, top_p=1.0, best_of=3, seed=SAMPLING["seed"],
    )  # fmt: skip
    assert tokens.codes.shape == (2, 8, 8) and torch.equal(tokens.codes, direct)
    assert not torch.equal(tokens.codes, sample(comfy, model, t2i_cond, batch_size=2).codes)  # left out: one draw


def test_widgets_at_auto_give_the_models_recommendation_as_the_python_api_does(comfy, loaded, t2i_cond):
    model = loaded["t2i"]
    auto = dict(cfg=-1, temperature=-1, top_k=-1, top_p=-1, candidates=-1)
    tokens = sample(comfy, model, t2i_cond, batch_size=2, **auto)
    core = comfy.core()
    direct = core.generate(model.gpt, t2i_cond.cond.expand(2, -1, -1), cond_mask=t2i_cond.mask.expand(2, -1), seed=5)
    assert torch.equal(tokens.codes, direct)
    one = core.generate(model.gpt, t2i_cond.cond, cond_mask=t2i_cond.mask, seed=6)  # image 1 of the batch: seed + 1
    assert torch.equal(tokens.codes[1:], one)
    rec = model.gpt.recommended
    explicit = dict(cfg=rec.sample.cfg_scale, temperature=rec.sample.temperature, top_k=rec.sample.top_k, top_p=1.0)
    assert torch.equal(sample(comfy, model, t2i_cond, batch_size=2, candidates=rec.best_of, **explicit).codes, direct)


def test_sjd_decoding_reaches_the_core(comfy, loaded, t2i_cond):
    model = loaded["t2i"]
    tokens = sample(comfy, model, t2i_cond, top_k=1, decoding="sjd", window=4)
    assert torch.equal(tokens.codes, sample(comfy, model, t2i_cond, top_k=1).codes)  # greedy: the same tokens
    drawn = sample(comfy, model, t2i_cond, decoding="sjd", window=4)
    direct = comfy.core().generate(
        model.gpt, t2i_cond.cond, cond_mask=t2i_cond.mask, cfg_scale=4.0, temperature=1.0, top_k=0, top_p=1.0,
        best_of=1, seed=5, decoding="sjd", window=4,
    )  # fmt: skip
    assert torch.equal(drawn.codes, direct)


def test_sampler_with_a_class_label_and_a_negative(comfy, loaded):
    model = loaded["c2i"]
    (pos,), _ = comfy.run("GPTImgClassLabel", model=model, **{"class": "blue star"})
    (neg,), _ = comfy.run("GPTImgClassLabel", model=model, **{"class": "3"})
    (tokens,), _ = comfy.run(
        "GPTImgSampler", model=model, positive=pos, negative=neg, batch_size=3, cfg_interval=-1,
        cfg_schedule="constant", **SAMPLING,
    )  # fmt: skip
    direct = comfy.core().generate(
        model.gpt, torch.full((3,), pos.cond.item()), uncond=torch.full((3,), 3), cfg_scale=4.0, temperature=1.0,
        top_k=0, top_p=1.0, best_of=1, seed=SAMPLING["seed"],
    )  # fmt: skip
    assert torch.equal(tokens.codes, direct)


def test_decode_gives_a_comfy_image(picture):
    _, image = picture
    assert image.shape == (1, 64, 64, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_encode_decode_round_trip_and_fit_modes(comfy, loaded, picture):
    tokens, image = picture
    vq = loaded["vq"]
    (again,), _ = comfy.run("GPTImgVQEncode", vq=vq, image=image, fit="error")
    assert again.codes.shape == (1, 8, 8) and again.vq_id == vq.vq_id and again.downsample == 8
    assert torch.equal(again.codes, vq.vq.encode(image.permute(0, 3, 1, 2) * 2 - 1))
    big = torch.rand(2, 70, 75, 4)  # RGBA, not a multiple of 8
    (cropped,), _ = comfy.run("GPTImgVQEncode", vq=vq, image=big, fit="crop")
    (resized,), _ = comfy.run("GPTImgVQEncode", vq=vq, image=big, fit="resize")
    assert cropped.codes.shape == (2, 8, 9) and resized.codes.shape == (2, 9, 9)
    pixels = big[:, 3:67, 1:73, :3].permute(0, 3, 1, 2) * 2 - 1  # the centre crop
    assert torch.equal(cropped.codes, vq.vq.encode(pixels))


def keep_fraction(before, after):
    return float((before.codes == after.codes).float().mean())


def test_token_inpaint_keeps_unmasked_tokens_exactly(comfy, loaded, t2i_cond, picture):
    generated, _ = picture
    mask = torch.zeros(1, 64, 64)
    mask[:, 20:44, 8:30] = 1.0  # token rows 2..5, columns 1..3
    redo = torch.zeros(8, 8, dtype=torch.bool)
    redo[2:6, 1:4] = True
    # the hole holds junk (12 distinct codes) that the fill must replace: the model's own tokens for this
    # prompt could come back unchanged, as a confident model draws them again
    junk = torch.arange(12) * 37 + 5
    codes = generated.codes.clone()
    codes[0][redo] = junk
    tokens = dataclasses.replace(generated, codes=codes)
    (out,), ui = comfy.run(
        "GPTImgTokenInpaint", model=loaded["t2i"], tokens=tokens, mask=mask, positive=t2i_cond, mask_mode="any",
        threshold=0.5, grow=0, candidates=2, passes=1, **SAMPLING,
    )  # fmt: skip
    assert torch.equal(out.codes[0][~redo], tokens.codes[0][~redo])
    assert (out.codes[0][redo] != junk).sum() >= 6  # filled, not passed through
    assert out.vq_id == tokens.vq_id and out.downsample == 8
    (grid,) = ui["gptimg_grid"]
    assert (grid["h"], grid["w"], grid["downsample"]) == (8, 8, 8) and len(grid["coverage"]) == 64
    assert grid["coverage"][2 * 8 + 1] == pytest.approx(4 * 8 / 64) and grid["coverage"][3 * 8 + 2] == 1.0
    assert ui["images"][0]["type"] == "temp"


def test_outpaint_places_tokens_and_fills_the_rest(comfy, loaded, t2i_cond, picture):
    tokens, _ = picture
    (out,), _ = comfy.run(
        "GPTImgOutpaint", model=loaded["t2i"], tokens=tokens, positive=t2i_cond, top=0, left=-3, **SAMPLING
    )
    assert out.codes.shape == (1, 8, 8)
    assert torch.equal(out.codes[:, :, :5], tokens.codes[:, :, 3:])  # shifted left by 3 tokens, kept exactly
    small = tokens.with_codes(tokens.codes[:, :4, :4])
    (out,), _ = comfy.run(
        "GPTImgOutpaint", model=loaded["t2i"], tokens=small, positive=t2i_cond, top=2, left=2, **SAMPLING
    )
    assert torch.equal(out.codes[:, 2:6, 2:6], small.codes)


def test_variations_keep_the_top_rows(comfy, loaded, t2i_cond, picture):
    tokens, _ = picture
    (out,), _ = comfy.run(
        "GPTImgVariations", model=loaded["t2i"], tokens=tokens, positive=t2i_cond, keep_rows=1, batch_size=3,
        **{**SAMPLING, "cfg": 1.0, "temperature": 2.0},
    )  # fmt: skip
    assert out.codes.shape == (3, 8, 8)
    assert torch.equal(out.codes[:, :1], tokens.codes[:, :1].expand(3, -1, -1))
    # each variation draws its own tokens: one kept row leaves the object to draw, so three independent
    # draws differ (with 3 kept rows the remainder can be background only, which the built-in model
    # completes with the same flat codes nearly every time, even at temperature 2)
    assert len({tuple(c.flatten().tolist()) for c in out.codes}) == 3


@pytest.mark.parametrize("strength", [0.0, 0.25, 1.0])
def test_img2img_resamples_a_strength_fraction(comfy, loaded, t2i_cond, picture, strength):
    tokens, _ = picture
    (out,), _ = comfy.run(
        "GPTImgImg2Img", model=loaded["t2i"], tokens=tokens, positive=t2i_cond, strength=strength, **SAMPLING
    )
    assert out.codes.shape == tokens.codes.shape
    assert keep_fraction(tokens, out) >= 1.0 - strength  # resampled tokens may also come out the same
    if strength == 0.0:
        assert torch.equal(out.codes, tokens.codes)


def test_token_mask_preview_tints_the_selected_cells(comfy, loaded, picture):
    _, image = picture
    mask = torch.zeros(1, 64, 64)
    mask[:, 0:10, 0:10] = 0.3  # touches 4 cells; fully covers none
    run = lambda mode, grow: comfy.run(  # noqa: E731
        "GPTImgTokenMaskPreview", vq=loaded["vq"], image=image, mask=mask, mask_mode=mode, threshold=0.5, grow=grow
    )
    (out,), ui = run("any", 0)
    assert out.shape == image.shape and out.dtype == torch.float32 and 0 <= float(out.min()) <= float(out.max()) <= 1
    inside = (slice(None), slice(2, 7), slice(2, 7))  # cell (0, 0) without its border lines
    assert not torch.allclose(out[inside], image[inside])
    assert torch.equal(out[:, 50:55, 50:55], image[:, 50:55, 50:55])  # unselected cell, off the grid lines
    assert torch.equal(out[:, 48, 50:55], image[:, 48, 50:55] * 0.6)  # grid line
    (none,), _ = run("threshold", 0)
    assert torch.equal(none[inside], image[inside])
    (grown,), _ = run("any", 1)
    assert not torch.allclose(grown[:, 18:23, 18:23], image[:, 18:23, 18:23])  # cell (2, 2)
    assert ui["gptimg_grid"][0]["coverage"][0] == pytest.approx(0.3) and ui["images"][0]["filename"]


def test_model_loader_offers_int8_weights(comfy):
    (model,), _ = comfy.run("GPTImgLoadModel", ckpt_name="builtin c2i", dtype="int8", n_head=0, grid=0)
    ffn = model.gpt.layers[0].feed_forward
    assert type(ffn.w1).__name__ == "Int8Linear" and ffn.w1.weight.dtype == torch.int8
