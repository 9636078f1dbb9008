"""Bad input -> a ValueError naming the node, the input and the fix (the spec's list), raised through ComfyUI's
execution path."""

from __future__ import annotations

import shutil

import pytest
import torch

from gptimg_core import GPT, GPTConfig, VQConfig, VQModel, builtin_path, save_model

SAMPLING = dict(seed=0, cfg=4.0, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def model_files(comfy, tmp_path_factory):
    """Files in extra model folders: a VQ with another codebook size, a VQ put among the GPTs, a GPT among
    the VQs, a tiny 1000-class c2i GPT (ImageNet names)."""
    root = tmp_path_factory.mktemp("models")
    gpts, vqs = root / "gptimg", root / "gptimg_vq"
    gpts.mkdir()
    vqs.mkdir()
    torch.manual_seed(0)
    save_model(
        VQModel(VQConfig(ch=32, ch_mult=(1, 1, 2, 2), codebook_size=512, z_channels=32)), vqs / "vq512.safetensors"
    )
    save_model(
        GPT(GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=1024, block_size=64, num_classes=1000)),
        gpts / "imagenet_tiny.safetensors",
    )
    shutil.copy(builtin_path("vq"), gpts / "actually_a_vq.safetensors")
    shutil.copy(builtin_path("t2i"), vqs / "actually_a_gpt.safetensors")
    fp = comfy.folder_paths
    fp.add_model_folder_path("gptimg", str(gpts))
    fp.add_model_folder_path("gptimg_vq", str(vqs))
    yield
    fp.folder_names_and_paths["gptimg"][0].remove(str(gpts))
    fp.folder_names_and_paths["gptimg_vq"][0].remove(str(vqs))


@pytest.fixture(scope="module")
def cond(comfy, loaded):
    (c,), _ = comfy.run("GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt="a red circle")
    return c


@pytest.fixture(scope="module")
def tokens(comfy, loaded, cond):
    (t,), _ = comfy.run(
        "GPTImgSampler", model=loaded["t2i"], positive=cond, vq=loaded["vq"], batch_size=1, cfg_interval=-1,
        cfg_schedule="constant", **SAMPLING,
    )  # fmt: skip
    return t


def test_loader_with_the_wrong_kind_of_checkpoint(comfy, model_files):
    with pytest.raises(
        ValueError, match=r"^Load GPT Image Model: ckpt_name: .*looks like a VQ tokenizer.*Load VQ Tokenizer"
    ):
        comfy.run("GPTImgLoadModel", ckpt_name="actually_a_vq.safetensors", dtype="auto", n_head=0, grid=0)
    with pytest.raises(
        ValueError, match=r"^Load VQ Tokenizer: vq_name: .*looks like a GPT image model.*Load GPT Image"
    ):
        comfy.run("GPTImgLoadVQ", vq_name="actually_a_gpt.safetensors")
    with pytest.raises(ValueError, match=r"^Load GPT Image Model: ckpt_name: .*gone.pt.*refresh the node list"):
        comfy.run("GPTImgLoadModel", ckpt_name="gone.pt", dtype="auto", n_head=0, grid=0)
    with pytest.raises(ValueError, match=r"^Load Text Encoder: encoder_name: no T5 folder 'flan-t5-xl'.*put the whole"):
        comfy.run("GPTImgLoadTextEncoder", encoder_name="flan-t5-xl")


def test_vq_codebook_must_match_the_gpt_vocabulary(comfy, loaded, cond, tokens, model_files):
    (vq512,), _ = comfy.run("GPTImgLoadVQ", vq_name="vq512.safetensors")
    with pytest.raises(
        ValueError,
        match=r"^Autoregressive Sampler: vq: the VQ has 512 codes but the GPT's vocabulary is 1024.*trained with",
    ):
        comfy.run(
            "GPTImgSampler", model=loaded["t2i"], positive=cond, vq=vq512, batch_size=1, cfg_interval=-1,
            cfg_schedule="constant", **SAMPLING,
        )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"^VQ Decode: tokens: were made with another VQ .*decode them with the VQ that encoded"
    ):
        comfy.run("GPTImgVQDecode", vq=vq512, tokens=tokens)
    anonymous = type(tokens)(tokens.codes, 1024)  # from a sampler without a VQ: only the codebook size is known
    with pytest.raises(
        ValueError, match=r"^VQ Decode: tokens: come from a vocabulary of 1024 codes but this VQ has 512"
    ):
        comfy.run("GPTImgVQDecode", vq=vq512, tokens=anonymous)
    (small,), _ = comfy.run("GPTImgVQEncode", vq=vq512, image=torch.rand(1, 64, 64, 3), fit="error")
    with pytest.raises(
        ValueError, match=r"^Token img2img: tokens: come from a VQ with 512 codes .*GPT's vocabulary is 1024"
    ):
        comfy.run("GPTImgImg2Img", model=loaded["t2i"], tokens=small, positive=cond, strength=0.5, **SAMPLING)


def test_mask_must_match_the_image(comfy, loaded, cond, tokens):
    image = torch.rand(1, 64, 64, 3)
    preview = dict(vq=loaded["vq"], image=image, mask_mode="any", threshold=0.5, grow=0)
    with pytest.raises(
        ValueError,
        match=r"^Token Mask Preview: mask: the mask is 32x48 but the image is 64x64; use a mask of the same size",
    ):
        comfy.run("GPTImgTokenMaskPreview", mask=torch.ones(1, 48, 32), **preview)
    inpaint = dict(model=loaded["t2i"], tokens=tokens, positive=cond, mask_mode="any", threshold=0.5, grow=0, candidates=1, passes=1)  # fmt: skip
    with pytest.raises(ValueError, match=r"^Token Inpaint: mask: the mask is 32x32 but the tokens' image is 64x64"):
        comfy.run("GPTImgTokenInpaint", mask=torch.ones(1, 32, 32), **inpaint, **SAMPLING)
    with pytest.raises(ValueError, match=r"^Token Inpaint: mask: has 2 masks for 1 images"):
        comfy.run("GPTImgTokenInpaint", mask=torch.ones(2, 64, 64), **inpaint, **SAMPLING)
    anonymous = type(tokens)(tokens.codes, 1024)  # no downsample known: the mask must be a multiple of the grid
    with pytest.raises(ValueError, match=r"^Token Inpaint: mask: is 60x60, which does not fit the tokens' 8x8 grid"):
        comfy.run("GPTImgTokenInpaint", **{**inpaint, "tokens": anonymous}, mask=torch.ones(1, 60, 60), **SAMPLING)


def test_image_must_be_a_multiple_of_the_downsample(comfy, loaded):
    with pytest.raises(
        ValueError,
        match=r"^VQ Encode: image: is 60x66, not a multiple of the VQ's downsample 8.*set fit to crop or resize",
    ):
        comfy.run("GPTImgVQEncode", vq=loaded["vq"], image=torch.rand(1, 66, 60, 3), fit="error")
    with pytest.raises(
        ValueError, match=r"^Token Mask Preview: image: is 60x60, not a multiple of the VQ's downsample 8"
    ):
        comfy.run(
            "GPTImgTokenMaskPreview", vq=loaded["vq"], image=torch.rand(1, 60, 60, 3), mask=torch.ones(60, 60),
            mask_mode="any", threshold=0.5, grow=0,
        )  # fmt: skip


def test_tokens_grid_larger_than_the_models(comfy, loaded, cond):
    (big,), _ = comfy.run("GPTImgVQEncode", vq=loaded["vq"], image=torch.rand(1, 128, 96, 3), fit="error")
    assert big.grid == (16, 12)
    with pytest.raises(
        ValueError, match=r"^Token Inpaint: tokens: form a 16x12 grid, larger than the model's 8x8; give a 64x64 image"
    ):
        comfy.run(
            "GPTImgTokenInpaint", model=loaded["t2i"], tokens=big, mask=torch.ones(1, 128, 96), positive=cond,
            mask_mode="any", threshold=0.5, grow=0, candidates=1, passes=1, **SAMPLING,
        )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"^Outpaint / Extend Canvas: tokens: form a 16x12 grid, larger than the model's 8x8"
    ):
        comfy.run("GPTImgOutpaint", model=loaded["t2i"], tokens=big, positive=cond, top=0, left=0, **SAMPLING)
    (small,), _ = comfy.run("GPTImgVQEncode", vq=loaded["vq"], image=torch.rand(1, 32, 32, 3), fit="error")
    with pytest.raises(
        ValueError, match=r"^Variations: tokens: form a 4x4 grid, not the model's 8x8.*Outpaint / Extend Canvas"
    ):
        comfy.run(
            "GPTImgVariations", model=loaded["t2i"], tokens=small, positive=cond, keep_rows=1, batch_size=1, **SAMPLING
        )
    with pytest.raises(
        ValueError, match=r"^Outpaint / Extend Canvas: left: places the 4x4 tokens at \(0, 8\), entirely outside"
    ):
        comfy.run("GPTImgOutpaint", model=loaded["t2i"], tokens=small, positive=cond, top=0, left=8, **SAMPLING)


def test_class_out_of_range_or_unknown(comfy, loaded, model_files):
    c2i = loaded["c2i"]
    with pytest.raises(
        ValueError, match=r"^Class Label: class: class id 48 is out of range; this model has classes 0..47"
    ):
        comfy.run("GPTImgClassLabel", model=c2i, **{"class": "48"})
    with pytest.raises(
        ValueError, match=r"^Class Label: class: unknown class name 'red circel'; did you mean 'red circle'"
    ):
        comfy.run("GPTImgClassLabel", model=c2i, **{"class": "red circel"})
    with pytest.raises(ValueError, match=r"^Class Label: class: is empty; give a class id 0..47 or a class name"):
        comfy.run("GPTImgClassLabel", model=c2i, **{"class": " "})
    with pytest.raises(
        ValueError, match=r"^Class Label: model: is a text-to-image \(t2i\) model; condition it with Encode Prompt"
    ):
        comfy.run("GPTImgClassLabel", model=loaded["t2i"], **{"class": "1"})
    (imagenet,), ui = comfy.run(
        "GPTImgLoadModel", ckpt_name="imagenet_tiny.safetensors", dtype="auto", n_head=0, grid=0
    )
    assert "names: tench, goldfish, great white shark" in ui["text"][0]
    (golden,), _ = comfy.run("GPTImgClassLabel", model=imagenet, **{"class": "Golden Retriever"})
    assert golden.cond.tolist() == [207]
    with pytest.raises(
        ValueError, match=r"^Class Label: class: 'crane' names several classes \(134, 517\); give the id"
    ):
        comfy.run("GPTImgClassLabel", model=imagenet, **{"class": "crane"})


def test_condition_must_fit_the_model(comfy, loaded, cond):
    settings = dict(batch_size=1, cfg_interval=-1, cfg_schedule="constant", **SAMPLING)
    with pytest.raises(ValueError, match=r"^Encode Prompt: prompt: is empty; this is a text-to-image model"):
        comfy.run("GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt=" \n ")
    with pytest.raises(
        ValueError, match=r"^Encode Prompt: model: is a class-to-image \(c2i\) model; condition it with Class Label"
    ):
        comfy.run("GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["c2i"], prompt="a red circle")
    with pytest.raises(
        ValueError, match=r"^Autoregressive Sampler: positive: is a t2i condition but the model is c2i; use Class Label"
    ):
        comfy.run("GPTImgSampler", model=loaded["c2i"], positive=cond, **settings)
    (label,), _ = comfy.run("GPTImgClassLabel", model=loaded["c2i"], **{"class": "1"})
    with pytest.raises(
        ValueError,
        match=r"^Autoregressive Sampler: negative: is a c2i condition but the model is t2i; use Encode Prompt",
    ):
        comfy.run("GPTImgSampler", model=loaded["t2i"], positive=cond, negative=label, **settings)
