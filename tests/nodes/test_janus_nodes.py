"""A Janus-Pro folder through the nodes in a real ComfyUI: listed by the three loaders, prompts encoded with its
own tokenizer, the sampler and Token Inpaint as thin wrappers over the core, VQ decode to an IMAGE."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tiny_janus
import tiny_janus as tj  # noqa: E402

NAME = "Janus-Tiny"
SAMPLING = dict(seed=3, cfg=5.0, temperature=1.0, top_k=8, top_p=1.0)


@pytest.fixture(scope="module")
def janus(comfy, tmp_path_factory):
    root = tmp_path_factory.mktemp("gptimg_models")
    tj.build(root / NAME, tj.SHAPES["odd"])
    comfy.folder_paths.add_model_folder_path("gptimg", str(root))
    run = comfy.run
    return {
        "model": run("GPTImgLoadModel", ckpt_name=NAME, dtype="fp32", n_head=0, grid=0),
        "vq": run("GPTImgLoadVQ", vq_name=NAME),
        "te": run("GPTImgLoadTextEncoder", encoder_name=NAME),
    }


def test_loaders_list_and_load_the_folder(comfy, janus):
    for node, name in (("GPTImgLoadModel", "ckpt_name"), ("GPTImgLoadVQ", "vq_name")):
        assert NAME in str(comfy.object_info(node)["input"]["required"][name])
    (model,), ui = janus["model"]
    assert "Janus-Pro image generator" in ui["text"][0] and "5x5 token grid" in ui["text"][0]
    assert model.gpt.grid == 5 and model.gpt.vocab_size == tj.SHAPES["odd"].codes
    (vq,), ui = janus["vq"]
    assert vq.downsample == 16 and vq.codebook_size == model.gpt.vocab_size and "VQ-16" in ui["text"][0]
    (te,), ui = janus["te"]
    assert "Janus prompt tokenizer" in ui["text"][0]
    with pytest.raises(Exception, match=rf"Load GPT Image Model: compile: {NAME} is a folder; compile is for LlamaGen"):
        comfy.run("GPTImgLoadModel", ckpt_name=NAME, dtype="fp32", n_head=0, grid=0, compile=True)


def test_sampler_and_inpaint_are_thin_wrappers(comfy, janus):
    (model,), _ = janus["model"]
    (vq,), _ = janus["vq"]
    (te,), _ = janus["te"]
    (cond,), _ = comfy.run(
        "GPTImgEncodePrompt", text_encoder=te, model=model, prompt="a red dog", negative_prompt="blurry"
    )
    assert cond.cond.dtype == torch.int64 and int(cond.cond[0, -1]) == model.gpt.boi_id and cond.uncond is not None
    settings = {**SAMPLING, "batch_size": 2, "cfg_interval": -1, "cfg_schedule": "constant"}
    (tokens,), _ = comfy.run("GPTImgSampler", model=model, positive=cond, vq=vq, **settings)
    direct = comfy.core().generate(
        model.gpt, cond.cond.expand(2, -1), cond_mask=cond.mask.expand(2, -1), uncond=cond.uncond.expand(2, -1),
        uncond_mask=cond.uncond_mask.expand(2, -1), cfg_scale=5.0, temperature=1.0, top_k=8, top_p=1.0,
        seed=SAMPLING["seed"],
    )  # fmt: skip
    assert tokens.codes.shape == (2, 5, 5) and torch.equal(tokens.codes, direct)
    (image,), _ = comfy.run("GPTImgVQDecode", vq=vq, tokens=tokens)
    assert image.shape == (2, 80, 80, 3)
    mask = torch.zeros(1, 80, 80)
    mask[:, 16:48, 16:48] = 1.0  # token rows and columns 1..2
    one = tokens.with_codes(tokens.codes[:1])
    (out,), _ = comfy.run(
        "GPTImgTokenInpaint", model=model, tokens=one, mask=mask, positive=cond, mask_mode="any", threshold=0.5,
        grow=0, candidates=2, passes=1, **SAMPLING,
    )  # fmt: skip
    keep = torch.ones(5, 5, dtype=torch.bool)
    keep[1:3, 1:3] = False
    assert torch.equal(out.codes[0][keep], one.codes[0][keep])


def test_a_t5_encoder_with_janus_is_refused(comfy, janus, loaded):
    (model,), _ = janus["model"]
    with pytest.raises(Exception, match="does not belong to this model"):
        comfy.run("GPTImgEncodePrompt", text_encoder=loaded["te"], model=model, prompt="a dog", negative_prompt="")


def test_progress_and_interrupt_while_sampling(comfy, janus, progress):
    (model,), _ = janus["model"]
    (vq,), _ = janus["vq"]
    (te,), _ = janus["te"]
    (cond,), _ = comfy.run("GPTImgEncodePrompt", text_encoder=te, model=model, prompt="a red dog", negative_prompt="")
    settings = {**SAMPLING, "batch_size": 2, "cfg_interval": -1, "cfg_schedule": "constant"}

    def run():
        return comfy.run("GPTImgSampler", "5", model=model, positive=cond, vq=vq, **settings)[0][0]

    expected = run()
    # 5x5 tokens; whether a preview fits the 10% time budget on so short a run depends on timing:
    # test_janus_server.py checks live previews on a 24x24 grid
    assert progress.updates[-1][:2] == (25, 25)
    seen = []

    def interrupt_once(value: int, total: int) -> None:
        if not seen:
            seen.append(value)
            comfy.mm.interrupt_current_processing(True)  # what POST /interrupt does

    progress.on_update = interrupt_once
    with pytest.raises(comfy.mm.InterruptProcessingException):
        run()
    progress.on_update = None
    assert not comfy.mm.processing_interrupted() and torch.equal(run().codes, expected.codes)  # reusable
