"""Janus-Pro through the public API, on tiny random Janus folders (tiny_janus.py): parity with transformers'
own image generation and VQ decode, prompt encoding as JanusProcessor does it, our decoders and editing on
Janus, loading only the generation half, and the loaders' errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_janus as tj
import torch

from gptimg_core import generate, inpaint, load_gpt, load_text_encoder, load_vq, outpaint
from gptimg_core.cli import main as cli_main
from gptimg_core.janus import JanusModel, JanusPromptEncoder, JanusVQ
from gptimg_core.janus.folder import JanusFolderError
from gptimg_core.janus.model import GENERATION_PREFIXES
from gptimg_core.token_model import DecodeState, TokenModel

PROMPTS = ["a red dog running in the rain", "hi", "  a cat  "]  # different lengths: left-padded rows


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, torch.nn.Module]]:
    """One folder per shape; "gqa" is saved in shards."""
    root = tmp_path_factory.mktemp("janus")
    out = {}
    for i, (name, shape) in enumerate(tj.SHAPES.items()):
        folder = root / name
        ref = tj.build(folder, shape, seed=i, shard="40KB" if name == "gqa" else None)
        out[name] = (folder, ref)
    return out


@pytest.fixture(scope="module")
def odd(built) -> tuple[Path, JanusModel, JanusPromptEncoder]:
    folder = built["odd"][0]
    return folder, load_gpt(folder), load_text_encoder(folder)


def test_folders_are_as_intended(built):
    gqa = built["gqa"][0]
    assert (gqa / "model.safetensors.index.json").is_file() and len(list(gqa.glob("model-*.safetensors"))) > 1
    assert (built["odd"][0] / "model.safetensors").is_file()
    cfg = json.loads((built["odd"][0] / "config.json").read_text())
    assert cfg["model_type"] == "janus" and cfg["text_config"]["hidden_size"] % 64 != 0


def test_prompt_encoding_matches_janus_processor(odd):
    folder, _, te = odd
    ids, mask = te.encode(PROMPTS)
    ref = tj.reference_prompt(folder, PROMPTS)
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"].bool())
    assert not bool(mask[1, 0]) and bool(mask[:, -1].all())  # left-padded
    assert ids.dtype == torch.long and mask.dtype == torch.bool


@pytest.mark.parametrize("shape", list(tj.SHAPES))
def test_greedy_cfg_parity_with_transformers_generate(built, shape):
    folder, ref = built[shape]
    model, te = load_gpt(folder), load_text_encoder(folder)
    assert isinstance(model, TokenModel) and model.grid == tj.SHAPES[shape].grid
    inputs = tj.reference_prompt(folder, PROMPTS)
    ids, mask = te.encode(PROMPTS)
    for scale in (1.5, 3.0, 5.0, 7.5):
        expected = ref.generate(**inputs, generation_mode="image", do_sample=False, guidance_scale=scale)
        ours = generate(model, ids, cond_mask=mask, cfg_scale=scale, top_k=1)
        assert ours.shape == (3, model.grid, model.grid)
        assert torch.equal(ours.flatten(1), expected), f"{shape} at cfg {scale}"
        assert len(set(expected.flatten().tolist())) > 5  # the tiny models do not repeat one code


def test_vq_decode_equals_decode_image_tokens(built):
    for folder, ref in built.values():
        vq = load_vq(folder)
        assert isinstance(vq, JanusVQ) and vq.downsample == 16
        g = ref.config.vq_config.num_patches
        codes = torch.randint(0, vq.codebook_size, (2, g, g), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = ref.decode_image_tokens(codes.flatten(1)).permute(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W)
        pixels = vq.decode(codes)
        assert pixels.shape == (2, 3, 16 * g, 16 * g) and pixels.dtype == torch.float32
        assert torch.equal(pixels, expected)
        again = vq.encode(pixels.clamp(-1, 1))
        assert again.shape == codes.shape and int(again.max()) < vq.codebook_size


def test_sampling_reproducible_per_seed(odd):
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    kw = dict(cond_mask=mask, cfg_scale=5.0, temperature=1.0, top_k=8, top_p=0.95)
    a = generate(model, ids, seed=7, **kw)
    assert torch.equal(a, generate(model, ids, seed=7, **kw))
    assert not torch.equal(a, generate(model, ids, seed=8, **kw))
    # image 1 of a batch is the batch of one with seed + 1 (same prompt, same padding)
    one = generate(model, ids[1:], seed=8, cond_mask=mask[1:], **{k: v for k, v in kw.items() if k != "cond_mask"})
    assert torch.equal(a[1:], one)


def test_candidates_and_callbacks(odd):
    """best-of draws, progress callbacks and cancelling from a callback go through the same interface."""
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    N = model.grid**2
    steps = []
    out = generate(
        model, ids, cond_mask=mask, cfg_scale=5.0, top_k=8, seed=4, best_of=3,
        callback=lambda step, total, tokens: steps.append((step, total, tokens.shape)),
    )  # fmt: skip
    assert out.shape == (2, model.grid, model.grid) and steps[-1] == (N, N, (2, N))
    assert [s for s, _, _ in steps] == sorted(s for s, _, _ in steps)

    class Stop(Exception):
        pass

    def stop(step: int, total: int, tokens: torch.Tensor) -> None:
        if step >= 3:
            raise Stop

    with pytest.raises(Stop):
        generate(model, ids, cond_mask=mask, seed=4, callback=stop)
    again = generate(model, ids, cond_mask=mask, cfg_scale=5.0, top_k=8, seed=4, best_of=3)
    assert torch.equal(again, out)  # nothing left behind by the cancelled run


def test_inpaint_outpaint_keep_every_kept_token(odd):
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    g = model.grid
    codes = generate(model, ids, cond_mask=mask, cfg_scale=3.0, top_k=4, seed=1)
    keep = torch.ones(2, g, g, dtype=torch.bool)
    keep[:, 1:3, 1:4] = False
    for particles, decoding in ((1, "ar"), (3, "ar"), (1, "sjd")):
        out = inpaint(
            model, codes, keep, ids, cond_mask=mask, cfg_scale=3.0, top_k=4, seed=2, particles=particles,
            decoding=decoding, window=3,
        )  # fmt: skip
        assert torch.equal(out[keep], codes[keep])
    out = outpaint(model, codes[:, :2, :3], ids, cond_mask=mask, top=1, left=1, cfg_scale=3.0, top_k=4, seed=3)
    assert torch.equal(out[:, 1:3, 1:4], codes[:, :2, :3])


@pytest.mark.parametrize("shape", ["odd", "gqa"])
def test_sjd_greedy_equals_ar_greedy(built, shape):
    folder = built[shape][0]
    model, te = load_gpt(folder), load_text_encoder(folder)
    ids, mask = te.encode(PROMPTS)
    for kw in (dict(cfg_scale=4.0), dict(cfg_scale=4.0, cfg_interval=5), dict(cfg_scale=3.0, cfg_schedule="linear")):
        ar = generate(model, ids, cond_mask=mask, top_k=1, **kw)
        sjd = generate(model, ids, cond_mask=mask, top_k=1, decoding="sjd", window=4, **kw)
        assert torch.equal(ar, sjd), kw


def test_decode_state_rewinds_and_drops_rows(odd):
    """feed at t overwrites what was fed at >= t (speculative decoding's rewind); keep_rows keeps the cond half."""
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    cond = model.condition(ids, mask, None, None, guided=True, where="test")
    tokens = torch.randint(0, model.vocab_size, (4, 6), generator=torch.Generator().manual_seed(0))
    other = (tokens + 1) % model.vocab_size
    with torch.no_grad():
        fresh = model.start(cond)
        assert isinstance(fresh, DecodeState)
        first = fresh.prefill()
        expected = fresh.feed(tokens, 0)
        state = model.start(cond)
        assert torch.allclose(state.prefill(), first)
        state.feed(other, 0)  # a wrong draft of 6 tokens
        torch.testing.assert_close(state.feed(tokens[:, :3], 0), expected[:, :3])  # rewound to 0
        torch.testing.assert_close(state.feed(tokens[:, 3:], 3), expected[:, 3:])
        state.keep_rows(2)
        fresh.keep_rows(2)
        torch.testing.assert_close(state.feed(other[:2, :2], 6), fresh.feed(other[:2, :2], 6))


def test_unconditional_branch_default_and_negative_prompt(odd):
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    cond = model.condition(ids, mask, None, None, guided=True, where="test")
    null = cond.rows[2:]
    assert bool(((null == model.pad_id) | (null == model.bos_id) | (null == model.boi_id)).all())
    assert torch.equal(null[:, -1], ids[:, -1]) and int((null == model.bos_id).sum()) == 2
    # the default null branch is the same as passing it explicitly
    explicit = generate(model, ids, cond_mask=mask, uncond=model.null_prompt(ids), uncond_mask=mask, top_k=1)
    assert torch.equal(explicit, generate(model, ids, cond_mask=mask, top_k=1))
    neg, neg_mask = te.encode(["blurry, low quality, watermark, text, extra fingers"])  # longer than the prompts
    c = model.condition(ids, mask, neg, neg_mask, guided=True, where="test")
    assert c.rows.shape == (4, neg.shape[1]) and torch.equal(c.rows[2], neg[0]) and not bool(c.mask[0, 0])
    out = generate(model, ids, cond_mask=mask, uncond=neg, uncond_mask=neg_mask, top_k=1)
    assert out.shape == (2, model.grid, model.grid)


def test_loads_only_the_generation_half(built):
    from safetensors import safe_open

    folder = built["gqa"][0]
    names: dict[str, int] = {}
    for shard in folder.glob("model-*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
            names.update({k: f.get_slice(k).get_shape() for k in f.keys()})
    wanted = {k for k in names if k.startswith(GENERATION_PREFIXES)}
    assert any(k.startswith("model.vision_model.") for k in names)
    model = load_gpt(folder)
    got = {f"model.{k}" for k in model.state_dict()}
    assert got == wanted  # no vision_model, aligner, vqmodel or lm_head tensor
    # the vision encoder's SigLIP layers are never built either (bench/janus_memory.py measures the memory)
    assert not any(n.startswith(("vision_model", "aligner", "vqmodel")) for n, _ in model.named_modules())


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_half_precision_loads_and_samples(built, name):
    from gptimg_core.checkpoint import DTYPES

    folder = built["odd"][0]
    model = load_gpt(folder, dtype=DTYPES[name])
    assert model.dtype == DTYPES[name] and model.language_model.rotary_emb.inv_freq.dtype == torch.float32
    ids, mask = load_text_encoder(folder).encode(PROMPTS[:1])
    out = generate(model, ids, cond_mask=mask, cfg_scale=5.0, top_k=8, seed=0)
    assert out.shape == (1, model.grid, model.grid) and int(out.max()) < model.vocab_size


def built_folder(odd) -> Path:
    return odd[0]


def test_recommended_settings_come_from_the_folder(odd):
    _, model, _ = odd
    s = model.recommended.sample
    assert (s.cfg_scale, s.temperature, s.top_k, s.top_p) == (5.0, 1.0, 50, 1.0) and model.recommended.best_of == 1
    ids, mask = load_text_encoder(built_folder(odd)).encode(PROMPTS[:1])
    # settings left None are the model's: the same image as the recommendation spelled out
    spelled = generate(model, ids, cond_mask=mask, cfg_scale=5.0, temperature=1.0, top_k=50, top_p=1.0, seed=2)
    assert torch.equal(generate(model, ids, cond_mask=mask, seed=2), spelled)


def test_cli_generates_from_a_janus_folder(built, tmp_path, capsys):
    folder = built["odd"][0]
    out = tmp_path / "janus.png"
    rc = cli_main(["generate", "--gpt", str(folder), "--prompt", "a red dog", "--top-k", "4", "--out", str(out)])
    assert rc == 0 and out.is_file()
    from PIL import Image

    side = 16 * model_grid(folder)
    assert Image.open(out).size == (side, side)
    mask = tmp_path / "mask.png"
    pixels = np.zeros((side, side), dtype=np.uint8)
    pixels[16:48, 16:48] = 255  # white = repaint: token rows and columns 1..2
    Image.fromarray(pixels).save(mask)
    fixed = tmp_path / "inpainted.png"
    args = ["inpaint", "--gpt", str(folder), "--prompt", "a cat", "--image", str(out), "--mask", str(mask)]
    assert cli_main([*args, "--particles", "2", "--out", str(fixed)]) == 0 and fixed.is_file()


def model_grid(folder: Path) -> int:
    return int(json.loads((folder / "config.json").read_text())["vq_config"]["num_patches"])


# --- errors ---


def test_missing_shard_is_named(built, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(built["gqa"][0], folder)
    victim = sorted(folder.glob("model-*.safetensors"))[-1]
    victim.unlink()
    for load in (load_gpt, load_vq):
        with pytest.raises(
            JanusFolderError, match=rf"{load.__name__}: .*partial.* lacks 1 of the shards .*{victim.name}"
        ):
            load(folder)


def test_non_janus_config_is_refused(built, tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(built["odd"][0], folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    for load in (load_gpt, load_vq):
        with pytest.raises(JanusFolderError, match=rf"{load.__name__}: .*model_type 'llama', not 'janus'"):
            load(folder)
    with pytest.raises(JanusFolderError, match="load_gpt: .*has no config.json"):
        load_gpt(tmp_path)


def test_tokenizer_without_image_tokens_is_refused(tmp_path):
    folder = tmp_path / "noimg"
    tj.build(folder, tj.SHAPES["odd"], image_tokens=False)
    with pytest.raises(JanusFolderError, match=r"load_text_encoder: the tokenizer in .*noimg.* lacks Janus' image"):
        load_text_encoder(folder)


def test_n_head_and_grid_must_agree_with_the_folder(built):
    folder = built["odd"][0]
    assert load_gpt(folder, n_head=5, grid=5).grid == 5
    with pytest.raises(JanusFolderError, match=r"load_gpt: .* 5 heads and a 5x5 grid .* n_head=None and grid=24"):
        load_gpt(folder, grid=24)


def test_wrong_conditions_are_refused(odd):
    _, model, te = odd
    ids, mask = te.encode(PROMPTS[:2])
    with pytest.raises(TypeError, match="generate: this is a Janus model, so cond must be prompt token ids"):
        generate(model, torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match="generate: every cond row must end with <begin_of_image>"):
        generate(model, ids[:, :-1], cond_mask=mask[:, :-1])
    with pytest.raises(ValueError, match="generate: cond_mask must be left-padded"):
        generate(model, ids, cond_mask=mask.flip(1))


def test_prompt_encoders_check_which_model_they_serve(odd):
    # Each prompt encoder knows the family it serves: a Janus prompt on a LlamaGen GPT (or T5 on Janus) is refused.
    from gptimg_core import builtin_path

    _, model, te = odd
    assert te.for_model(model, "here") is te
    t2i = load_gpt(builtin_path("t2i"))
    with pytest.raises(ValueError, match="here: this Janus-Pro prompt encoder does not belong to this model"):
        te.for_model(t2i, "here")
    t5 = load_text_encoder(builtin_path("text_encoder"))
    with pytest.raises(ValueError, match="here: this T5 encoder does not belong to this model.*Janus-Pro"):
        t5.for_model(model, "here")
