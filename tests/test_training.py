"""Pieces of the built-in model's training recipe (the whole recipe is `python -m gptimg_core.builtin.train`)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gptimg_core.builtin import builtin_path
from gptimg_core.builtin.shapes import analyze, render
from gptimg_core.builtin.shapes.world import COLOURS, ObjectSpec, PlacedObject, Scene, SceneSpec, in_reading_order
from gptimg_core.builtin.train.__main__ import main as train_main
from gptimg_core.builtin.train.data import mixed_tokenizer_batch, object_boxes, text_batch, text_scenes, tokenizer_batch
from gptimg_core.builtin.train.precision import cpu_autocast, native_bf16
from gptimg_core.builtin.train.t5_folder import make_t5_folder
from gptimg_core.builtin.train.train_gpt import (
    GPTRecipe,
    TokenPool,
    _fast_math,
    _inputs,
    micro_slices,
    object_holes,
    token_loss,
    tokenize_scenes,
    train_c2i,
    train_t2i,
    transfer_weights,
)
from gptimg_core.builtin.train.train_vq import VQRecipe, pixel_weights, quantize, train_vq
from gptimg_core.checkpoint import load_gpt, load_vq
from gptimg_core.compiled import can_compile
from gptimg_core.config import GPTConfig, VQConfig
from gptimg_core.editing import pixel_mask_to_tokens
from gptimg_core.gpt import GPT
from gptimg_core.images import from_uint8, to_uint8
from gptimg_core.text_encoder import load_text_encoder
from gptimg_core.vq import VQModel


def _palette_index(pixels: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W) index of the exact palette colour (-1 where none)."""
    rgb = np.round((pixels.permute(0, 2, 3, 1).numpy() + 1) * 127.5).astype(int)
    out = np.full(rgb.shape[:3], -1)
    for i, c in enumerate(COLOURS.values()):
        out[(np.abs(rgb - np.array(c)) <= 1).all(-1)] = i
    return out


def test_tokenizer_batch_is_crowded_flat_and_reproducible():
    x = tokenizer_batch(np.random.default_rng(3), 24)
    assert x.shape == (24, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    idx = _palette_index(x)
    assert (idx >= 0).all()  # hard-edged flat shapes: every pixel is a palette colour
    colours_per_image = [len(np.unique(i[i >= 0])) for i in idx]
    assert min(colours_per_image) >= 2 and np.mean(colours_per_image) > 2.2  # more than one object on average
    assert torch.equal(x, tokenizer_batch(np.random.default_rng(3), 24))


def _two_objects(first: PlacedObject, second: PlacedObject) -> Scene:
    spec = SceneSpec("blue", tuple(ObjectSpec(o.colour, o.shape) for o in (first, second)))
    return Scene(spec, "blue", (first, second))


def test_in_reading_order_names_first_the_object_a_raster_scan_meets_first():
    low = PlacedObject("red", "circle", "small", 0.2, 0.7, 0.25)
    high = PlacedObject("green", "star", "small", 0.8, 0.3, 0.25)
    out = in_reading_order(_two_objects(low, high))
    assert [o.colour for o in out.spec.objects] == ["green", "red"]
    assert out.objects == (high, low)  # the placement travels with its spec
    # Tops in the same token row (y 0.27 and 0.30 -> row 2): left to right by the centre.
    right = PlacedObject("red", "circle", "small", 0.8, 0.4, 0.25)
    left = PlacedObject("green", "star", "small", 0.2, 0.43, 0.25)
    assert [o.shape for o in in_reading_order(_two_objects(right, left)).spec.objects] == ["star", "circle"]
    assert in_reading_order(_two_objects(high, low)) == _two_objects(high, low)  # already in order: unchanged


def test_text_batch_in_reading_order_draws_the_same_scenes_and_reorders_only_pair_prompts():
    x, prompts = text_batch(np.random.default_rng(4), 64)
    y, ordered = text_batch(np.random.default_rng(4), 64, reading_order=True)
    assert torch.equal(x, y)
    swapped = 0
    for p, q in zip(prompts, ordered, strict=True):
        if " and " not in p:
            assert p == q
            continue
        objects, rest = p.split(" on ")
        a, b = objects.split(" and ")
        assert q in (p, f"{b} and {a} on {rest}")
        swapped += q != p
    assert 0 < swapped < sum(" and " in p for p in prompts)  # random mention order: about half get swapped


def test_pixel_weights_mark_pixels_near_objects():
    obj = PlacedObject("red", "square", "small", 0.5, 0.5, 0.25)  # drawn on pixels 25..38
    scene = Scene(SceneSpec("blue", (ObjectSpec("red", "square"),)), "blue", (obj,))
    w = pixel_weights(from_uint8(render(scene, 64)), 4.0)[0, 0]  # (64, 64)
    assert w[32, 32] == 5.0 and w[23, 32] == 5.0 and w[32, 40] == 5.0  # inside, and 2 px outside the edges
    assert w[22, 32] == 1.0 and w[32, 41] == 1.0 and w[0, 0] == 1.0  # further out: the background weight
    assert torch.equal(pixel_weights(from_uint8(render(scene, 64)), 0.0), torch.ones(1, 1, 64, 64))


@pytest.mark.slow
def test_train_vq_runs_both_phases_and_reports_metrics():
    cfg = VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=32,
                   embed_dim=4, image_size=64, norm_groups=4)  # fmt: skip
    # 8 steps: 0-6 on crops (crop_until 0.85), 6-7 with the discriminator (gan_start 0.85), 7 whole images
    vq, metrics = train_vq(cfg, VQRecipe(steps=8, batch=2, restart_every=2), seed=0)
    assert set(metrics) == {"psnr_db", "codebook_usage", "train_seconds", "step_seconds"}
    assert 0 < metrics["codebook_usage"] <= 1 and metrics["psnr_db"] > 0
    assert 0 < metrics["step_seconds"] < metrics["train_seconds"]
    assert not vq.training


@pytest.mark.skipif(not native_bf16(), reason="no native bf16 on this CPU")
def test_quantize_searches_the_codebook_in_fp32_under_autocast():
    cfg = VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=512,
                   embed_dim=4, image_size=64, norm_groups=4)  # fmt: skip
    vq, z = VQModel(cfg), torch.randn(4, 4, 16, 16).bfloat16()  # an encoder's output under autocast
    zq, loss, codes = quantize(vq, z.float(), 0.25)
    with cpu_autocast(True):
        zq16, loss16, codes16 = quantize(vq, z, 0.25)
        naive = (F.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1) @ vq.quantize.codebook().T).argmax(1)
    assert zq16.dtype == loss16.dtype == torch.float32
    assert torch.equal(codes16, codes) and torch.allclose(zq16, zq) and torch.allclose(loss16, loss)
    assert not torch.equal(naive.view_as(codes), codes)  # a bf16 search would pick other codes (512 of them)


@pytest.mark.slow
@pytest.mark.skipif(not native_bf16(), reason="no native bf16 on this CPU")
def test_train_vq_bf16_keeps_fp32_weights_and_learns_as_fp32():
    cfg = VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=32,
                   embed_dim=4, image_size=64, norm_groups=4)  # fmt: skip
    runs = {
        bf16: train_vq(cfg, VQRecipe(steps=30, batch=4, restart_every=5, bf16=bf16), seed=0) for bf16 in (False, True)
    }
    (vq32, m32), (vq16, m16) = runs[False], runs[True]
    assert all(p.dtype == torch.float32 for p in vq16.parameters())  # master weights stay fp32
    w32, w16 = vq32.decoder.conv_out.weight, vq16.decoder.conv_out.weight
    assert not torch.equal(w32, w16)  # the bf16 run really computed in bf16 ...
    assert abs(m16["psnr_db"] - m32["psnr_db"]) < 1.0  # ... and learnt as much as fp32


@pytest.mark.skipif(not native_bf16(), reason="no native bf16 on this CPU")
def test_bf16_training_math_matches_fp32_loss():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=16, num_classes=4, cls_token_num=1))
    codes, y = torch.randint(0, 64, (8, 16)), torch.randint(0, 4, (8,))
    full = token_loss(gpt, y, codes, codes, None)
    with _fast_math(True):
        fast = token_loss(gpt, y, codes, codes, None)
    assert fast.dtype == torch.float32 and abs(fast.item() - full.item()) < 0.02 * full.item()
    gpt2, metrics = train_c2i(
        gpt.cfg, TokenPool(codes, codes, y.tolist()), GPTRecipe(steps=3, batch=4, warmup=1), seed=0
    )
    assert all(p.dtype == torch.float32 for p in gpt2.parameters())  # master weights stay fp32
    assert np.isfinite(metrics["final_loss"])


def _pair(dim: int = 32) -> tuple[GPT, GPT]:
    size = dict(dim=dim, n_layer=2, n_head=2, vocab_size=64, block_size=16)
    torch.manual_seed(0)
    t2i = GPT(GPTConfig(**size, model_type="t2i", caption_dim=8, cls_token_num=4))
    c2i = GPT(GPTConfig(**size, model_type="c2i", num_classes=3, cls_token_num=1))
    return t2i, c2i


def test_transfer_weights_copies_the_transformer_and_keeps_the_condition_embedding():
    t2i, c2i = _pair()
    table = c2i.cls_embedding.embedding_table.weight.clone()
    transfer_weights(c2i, t2i)
    src = t2i.state_dict()
    for k, v in c2i.state_dict().items():
        if k.startswith("cls_embedding."):
            continue
        assert torch.equal(v, src[k]), k
    assert torch.equal(c2i.cls_embedding.embedding_table.weight, table)
    assert c2i.layers[0].attention.wqkv.weight.data_ptr() != t2i.layers[0].attention.wqkv.weight.data_ptr()
    _, wider = _pair(dim=64)
    with pytest.raises(
        ValueError, match=r"transfer_weights: .* differ at tok_embeddings.weight: \(64, 64\) here, \(64, 32\)"
    ):
        transfer_weights(wider, t2i)
    other = GPT(replace(c2i.cfg, rope_base=500.0))
    with pytest.raises(ValueError, match=r"transfer_weights: rope_base is 500.0 here, 10000.0 in the source"):
        transfer_weights(other, t2i)


def test_train_c2i_starts_from_init_and_leaves_it_untouched():
    t2i, c2i = _pair()
    before = {k: v.clone() for k, v in t2i.state_dict().items()}
    codes, y = torch.randint(0, 64, (8, 16)), torch.randint(0, 3, (8,))
    pool = TokenPool(codes, codes, y.tolist())
    tuned, _ = train_c2i(c2i.cfg, pool, GPTRecipe(steps=2, batch=4, warmup=1, lr=1e-7), init=t2i)
    assert torch.allclose(tuned.layers[1].feed_forward.w2.weight, t2i.layers[1].feed_forward.w2.weight, atol=1e-5)
    fresh, _ = train_c2i(c2i.cfg, pool, GPTRecipe(steps=2, batch=4, warmup=1, lr=1e-7))
    assert not torch.allclose(fresh.layers[1].feed_forward.w2.weight, t2i.layers[1].feed_forward.w2.weight, atol=1e-3)
    assert all(torch.equal(v, before[k]) for k, v in t2i.state_dict().items())


def test_token_loss_predicts_targets_from_inputs():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, num_classes=2, cls_token_num=1))
    y, inputs, targets = torch.tensor([0, 1]), torch.randint(0, 16, (2, 9)), torch.randint(0, 16, (2, 9))
    logits = gpt(inputs[:, :-1], 0, cond=y)  # (2, 9, 16): position i has read the class and inputs[:, :i]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), targets.reshape(-1))
    assert torch.allclose(token_loss(gpt, y, inputs, targets, None), expected, atol=1e-6)
    assert not torch.allclose(token_loss(gpt, y, inputs, inputs, None), expected, atol=1e-3)


def test_inputs_mix_raw_codes_and_targets_by_the_recipe_share():
    pool = TokenPool(torch.zeros(64, 4, dtype=torch.long), torch.ones(64, 4, dtype=torch.long), [0] * 64)
    idx, g = torch.arange(64), torch.Generator().manual_seed(0)
    assert _inputs(pool, idx, GPTRecipe(raw_inputs=1.0), g).eq(0).all()
    assert _inputs(pool, idx, GPTRecipe(raw_inputs=0.0), g).eq(1).all()
    rows = _inputs(pool, idx, GPTRecipe(raw_inputs=0.5), g)
    assert (rows == rows[:, :1]).all() and 16 < int((rows[:, 0] == 0).sum()) < 48  # whole sequences, about half raw


def test_edit_inputs_read_raw_codes_around_a_rectangle_of_targets():
    n = 256
    pool = TokenPool(torch.zeros(n, 64, dtype=torch.long), torch.ones(n, 64, dtype=torch.long), [0] * n)
    idx = torch.arange(n)
    # off: the inputs the recipe drew before the option (one draw per sequence), and no further draws
    g, expected_g = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    off = _inputs(pool, idx, GPTRecipe(edit_inputs=0.0), g)
    raw = torch.rand(n, generator=expected_g) < 0.5
    assert torch.equal(off, torch.where(raw[:, None], pool.codes, pool.targets))
    assert torch.equal(g.get_state(), expected_g.get_state())
    rows = _inputs(pool, idx, GPTRecipe(edit_inputs=1.0), torch.Generator().manual_seed(0)).view(n, 8, 8)
    for r in rows:  # every sequence: targets (1) exactly on one rectangle of 1-5 x 1-5 tokens, raw (0) elsewhere
        ys, xs = r.nonzero(as_tuple=True)
        h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        assert 1 <= h <= 5 and 1 <= w <= 5 and int(r.sum()) == h * w
    sizes = rows.flatten(1).sum(1)
    assert len(set(sizes.tolist())) > 5  # the rectangles vary
    some = _inputs(pool, idx, GPTRecipe(edit_inputs=0.5), torch.Generator().manual_seed(0))
    partial = ((some == 0).any(1) & (some == 1).any(1)).sum()
    assert 64 < int(partial) < 192  # about half the sequences are edits (others are all raw or all targets)


def _box_tokens(box: tuple[float, float, float, float], grow: float) -> torch.Tensor:
    """(8, 8) bool: the tokens a box (x0, y0, x1, y1), grown by grow, covers, via a 64 px pixel mask."""
    x0, y0, x1, y1 = (round(64 * v) for v in (box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow))
    mask = torch.zeros(64, 64)
    mask[max(0, y0) : y1, max(0, x0) : x1] = 1
    return pixel_mask_to_tokens(mask, 8)[0]


def test_object_holes_cover_one_objects_box_grown_by_up_to_the_margin():
    objects = [
        PlacedObject("red", "star", "small", 0.3, 0.4, 0.25),
        PlacedObject("blue", "cross", "large", 0.7, 0.6, 0.5),
    ]
    one = Scene(SceneSpec("white", (ObjectSpec("red", "star"),)), "white", tuple(objects[:1]))
    two = Scene(SceneSpec("white", (ObjectSpec("red", "star"), ObjectSpec("blue", "cross"))), "white", tuple(objects))
    boxes = object_boxes([one, two] * 200)
    assert boxes.shape == (400, 2, 4) and boxes[0, 1].isnan().all() and not boxes[1].isnan().any()
    torch.testing.assert_close(boxes[1, 1], torch.tensor(objects[1].box()))
    # margin 0: exactly the tokens each box covers (a box edge on a token border takes no more)
    exact = object_holes(boxes, 8, torch.Generator().manual_seed(0), margin=0.0).view(-1, 8, 8)
    small, large = _box_tokens(objects[0].box(), 0), _box_tokens(objects[1].box(), 0)
    assert all(torch.equal(h, small) for h in exact[0::2])  # one object: always that one
    picked_large = [torch.equal(h, large) for h in exact[1::2]]
    assert all(torch.equal(h, small) or big for h, big in zip(exact[1::2], picked_large, strict=True))
    assert 60 < sum(picked_large) < 140  # either object of a pair, about half the time each
    grown = object_holes(boxes, 8, torch.Generator().manual_seed(1), margin=4 / 64).view(-1, 8, 8)
    widest = _box_tokens(objects[0].box(), 4 / 64)
    assert all(bool((h >= small).all() and (h <= widest).all()) for h in grown[0::2])
    assert len({int(h.sum()) for h in grown[0::2]}) > 1  # the margin varies, and so does the hole


def test_edit_holes_put_the_targets_on_an_objects_box():
    n = 64
    obj = PlacedObject("red", "star", "small", 0.3, 0.4, 0.25)
    scene = Scene(SceneSpec("white", (ObjectSpec("red", "star"),)), "white", (obj,))
    pool = TokenPool(torch.zeros(n, 64, dtype=torch.long), torch.ones(n, 64, dtype=torch.long), [0] * n)
    recipe = GPTRecipe(raw_inputs=1.0, edit_inputs=1.0, edit_holes=1.0)
    with pytest.raises(ValueError, match="edit_holes needs a pool with object boxes"):
        _inputs(pool, torch.arange(n), recipe, torch.Generator().manual_seed(0))
    pool.boxes = object_boxes([scene] * n)
    rows = _inputs(pool, torch.arange(n), recipe, torch.Generator().manual_seed(0)).view(n, 8, 8).bool()
    small, widest = _box_tokens(obj.box(), 0), _box_tokens(obj.box(), 4 / 64)
    assert all(bool((r >= small).all() and (r <= widest).all()) for r in rows)  # targets exactly on the hole
    half = _inputs(pool, torch.arange(n), replace(recipe, edit_holes=0.5), torch.Generator().manual_seed(0))
    on_box = [bool((r >= small).all() and (r <= widest).all()) for r in half.view(n, 8, 8).bool()]
    assert 16 < sum(on_box) < 56  # the rest are random rectangles (a few of which may fit the box too)


def test_tokenized_t2i_pools_keep_each_scenes_object_boxes():
    vq = load_vq(builtin_path("vq"))
    pool, _ = tokenize_scenes(vq, 24, "t2i", seed=3, chunk=10)
    scenes = text_scenes(np.random.default_rng(3), 10)  # the first chunk draws these from the same seed
    assert pool.boxes.shape == (24, 2, 4)
    pairs = torch.tensor([" and " in p for p in pool.conds])
    assert torch.equal(~pool.boxes[:, 1, 0].isnan(), pairs)  # a second box exactly where the prompt has two objects
    torch.testing.assert_close(pool.boxes[:10], object_boxes(scenes), equal_nan=True)  # the first chunk's scenes
    assert tokenize_scenes(vq, 8, "c2i", seed=3)[0].boxes is None


def test_train_c2i_learns_the_targets_not_the_inputs():
    cfg = GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, num_classes=2, cls_token_num=1)
    codes = torch.randint(0, 16, (32, 9), generator=torch.Generator().manual_seed(0))
    pool = TokenPool(codes, torch.full_like(codes, 7), [0, 1] * 16)
    gpt, _ = train_c2i(cfg, pool, GPTRecipe(steps=40, batch=16, warmup=2, lr=1e-2, bf16=False), seed=0)
    with torch.no_grad():
        logits = gpt(codes[:4, :-1], 0, cond=torch.tensor([0, 1, 0, 1]))  # (4, 9, 16)
    assert (logits.argmax(-1) == 7).all()


def test_micro_batches_give_the_whole_batch_update():
    """Chunked forward/backward (GPTRecipe.micro_batch) trains the same weights as whole batches."""
    assert micro_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    with pytest.raises(ValueError, match="micro_batch must be >= 1"):
        micro_slices(8, 0)
    cfg = GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, num_classes=2, cls_token_num=1)
    codes = torch.randint(0, 16, (32, 9), generator=torch.Generator().manual_seed(0))
    pool = TokenPool(codes, codes.flip(1), [0, 1] * 16)
    # AdamW only: Muon orthogonalises in bf16 (where native), which turns the summed gradients' float
    # rounding into 1e-2 differences; this test is about the gradients.
    recipe = GPTRecipe(steps=4, batch=10, warmup=1, lr=1e-2, bf16=False, micro_batch=10, muon=False)
    whole, m_whole = train_c2i(cfg, pool, recipe, seed=0)
    chunked, m_chunked = train_c2i(cfg, pool, replace(recipe, micro_batch=4), seed=0)
    assert abs(m_whole["final_loss"] - m_chunked["final_loss"]) < 1e-5
    for (k, a), b in zip(whole.state_dict().items(), chunked.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=k)
    other, _ = train_c2i(cfg, pool, recipe, seed=1)
    assert not torch.allclose(other.output.weight, whole.output.weight, atol=1e-3)  # the test can tell runs apart


def test_t2i_micro_batches_give_the_whole_batch_update(tmp_path):
    """The t2i's chunks slice prompts, dropped conditions and the key mask alike: with the T5's dropout off,
    chunked steps train the same GPT, T5 and null caption as whole batches."""
    words = ["a", "red", "green", "circle", "star", "on", "blue", "white", "background", "and", "small"]
    folder = make_t5_folder(tmp_path / "t5", words, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    cfg = GPTConfig(
        dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, model_type="t2i", caption_dim=16, cls_token_num=8
    )  # fmt: skip
    codes = torch.randint(0, 16, (12, 9), generator=torch.Generator().manual_seed(0))
    prompts = ["a red circle on a blue background", "a red circle and a small green star on a white background"] * 6
    pool = TokenPool(codes, codes.flip(1), prompts)
    recipe = GPTRecipe(steps=4, batch=10, warmup=1, lr=1e-2, bf16=False, cond_drop=0.3, micro_batch=10, muon=False)

    def run(micro_batch: int, seed: int = 0):
        te = load_text_encoder(folder, max_length=8)
        for mod in te.model.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0  # dropout draws from the global RNG in an order that depends on the chunking
        gpt, metrics = train_t2i(cfg, te, pool, replace(recipe, micro_batch=micro_batch), seed=seed)
        return gpt, te, metrics

    (whole, te_whole, m_whole), (chunked, te_chunked, m_chunked) = run(10), run(4)
    assert abs(m_whole["final_loss"] - m_chunked["final_loss"]) < 1e-5
    # atol 2e-4: Adam turns float-summation differences in near-zero gradients into ~4e-5 after 4 steps;
    # runs with another seed differ by > 1e-3 (checked below)
    for (k, a), b in zip(whole.state_dict().items(), chunked.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4, msg=k)
    for (k, a), b in zip(te_whole.model.state_dict().items(), te_chunked.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4, msg=k)
    other = run(10, seed=1)[0]
    assert not torch.allclose(other.output.weight, whole.output.weight, atol=1e-3)  # the test can tell runs apart


@pytest.mark.slow
@pytest.mark.skipif(not can_compile(), reason="torch.compile needs a C++ compiler (g++) on CPU")
def test_compiled_training_matches_eager_training():
    cfg = GPTConfig(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=9, num_classes=2, cls_token_num=1)
    codes = torch.randint(0, 16, (32, 9), generator=torch.Generator().manual_seed(0))
    pool = TokenPool(codes, codes, [0, 1] * 16)
    recipe = GPTRecipe(steps=3, batch=8, warmup=1, lr=1e-2, bf16=False, muon=False)  # AdamW: see above
    eager, m_eager = train_c2i(cfg, pool, recipe, seed=0)
    compiled, m_compiled = train_c2i(cfg, pool, replace(recipe, compile=True), seed=0)
    assert (m_eager["compiled"], m_compiled["compiled"]) == (False, True)
    assert abs(m_eager["final_loss"] - m_compiled["final_loss"]) < 1e-3
    for (k, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=k)
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())  # saved as the plain model


@pytest.mark.slow
def test_recipe_from_a_trained_vq_writes_a_loadable_model(tmp_path):
    """The whole recipe's stages 2-4 at a tiny scale, from the shipped VQ (`--vq`)."""
    out = tmp_path / "model"
    assert train_main(["--out", str(out), "--scale", "0.002", "--vq", str(builtin_path("vq"))]) == 0
    shipped, saved = load_vq(builtin_path("vq")), load_vq(out / "vq.safetensors").state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in shipped.state_dict().items())  # the given VQ, as it was
    metrics = json.loads((out / "training_metrics.json").read_text())
    assert metrics["vq"] == {"from": str(builtin_path("vq"))}
    assert set(metrics["stage_seconds"]) == {"vq", "tokens", "t2i", "c2i"} and "budget" not in metrics
    table = metrics["tokens"]["canonical_codes"]
    assert table == dict(zip(COLOURS, range(len(COLOURS)), strict=True))  # flat codes: each colour's own code
    assert 0.03 < metrics["tokens"]["targets_changed"] < 0.2  # the flat patches the encoder gives another code
    assert metrics["recipes"]["t2i"]["reading_order"] and not metrics["recipes"]["c2i"]["reading_order"]
    assert metrics["t2i"]["compiled"] == metrics["c2i"]["compiled"] == can_compile()
    t2i, c2i = load_gpt(out / "gpt_t2i.safetensors"), load_gpt(out / "gpt_c2i.safetensors")
    assert (t2i.cfg.model_type, c2i.cfg.model_type) == ("t2i", "c2i")
    te = load_text_encoder(out / "t5", max_length=t2i.cfg.cls_token_num)
    assert te.dim == t2i.cfg.caption_dim


def test_tokenizer_batch_can_draw_small_stars_only():
    x = tokenizer_batch(np.random.default_rng(4), 12, size="small", star_share=1.0)
    found = [o for im in to_uint8(x) for o in analyze(im).objects]
    assert len(found) >= 12
    assert {o.shape for o in found} == {"star"} and {o.size for o in found} == {"small"}


@pytest.mark.parametrize("small_share", [0.0, 0.5, 1.0])
def test_mixed_batches_end_with_the_small_object_share(small_share):
    x = mixed_tokenizer_batch(np.random.default_rng(5), 8, small_share, small_star_share=1.0)
    assert x.shape == (8, 3, 64, 64)
    kinds = [{(o.shape, o.size) for o in analyze(im).objects} for im in to_uint8(x)]
    crowded = 8 - round(8 * small_share)
    assert all(k == {("star", "small")} for k in kinds[crowded:])  # the small-object share: small stars here
    if crowded:  # the crowded scenes: shapes and sizes mixed
        assert len(set().union(*kinds[:crowded])) > 2
    if small_share == 0:  # no small share: exactly the crowded scenes' draws
        assert torch.equal(x, tokenizer_batch(np.random.default_rng(5), 8))


@pytest.mark.slow
def test_vq_stage_trains_on_its_recipes_small_object_share():
    cfg = VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=32,
                   embed_dim=4, image_size=64, norm_groups=4)  # fmt: skip

    def vq(share: float) -> VQModel:
        return train_vq(cfg, VQRecipe(steps=3, batch=2, small_share=share, small_star_share=1.0), seed=0)[0]

    plain = vq(0.0).encoder.conv_in.weight
    assert torch.equal(plain, vq(0.0).encoder.conv_in.weight)  # deterministic, so the share made the difference:
    assert not torch.equal(plain, vq(1.0).encoder.conv_in.weight)
