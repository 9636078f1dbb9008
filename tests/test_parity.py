"""Parity with LlamaGen's own code (fixtures computed at its commit ce98ec4): logits, greedy
generations with and without CFG, cfg_interval and padding masks, VQ codes and decoded pixels."""

import pytest
import torch

from gptimg_core import generate

from tiny import parity_gpt, parity_ref, parity_vq

GREEDY = {"greedy_cfg4.0_interval-1": (4.0, -1), "greedy_cfg2.5_interval4": (2.5, 4), "greedy_nocfg": (1.0, -1)}


@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_full_forward_logits(kind):
    gpt, ref = parity_gpt(kind), parity_ref(f"gpt_{kind}")
    cond = ref["cond"]
    null = gpt.null_condition.expand(cond.shape[0], *cond.shape[1:])
    with torch.no_grad():
        logits = gpt(torch.cat([ref["prefix"], ref["prefix"]]), 0, cond=torch.cat([cond, null]))
    assert logits.shape == ref["logits_full"].shape
    torch.testing.assert_close(logits, ref["logits_full"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", sorted(GREEDY))
@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_greedy_generation_matches(kind, case):
    gpt, ref = parity_gpt(kind), parity_ref(f"gpt_{kind}")
    scale, interval = GREEDY[case]
    tokens = generate(gpt, ref["cond"], cond_mask=ref.get("emb_masks"), cfg_scale=scale, cfg_interval=interval, top_k=1)
    assert tokens.shape == (2, 4, 4)
    assert torch.equal(tokens.view(2, -1), ref[case].long())


def test_t2i_padding_mask_matters():
    """The padded case differs from an unmasked run, so the fixture really tests the mask."""
    gpt, ref = parity_gpt("t2i"), parity_ref("gpt_t2i")
    masked = generate(gpt, ref["cond"], cond_mask=ref["emb_masks"], cfg_scale=4.0, top_k=1)
    plain = generate(gpt, ref["cond"], cfg_scale=4.0, top_k=1)
    assert not torch.equal(masked, plain)


def test_vq_encode_decode():
    vq, ref = parity_vq(), parity_ref("vq")
    codes = vq.encode(ref["image"])
    assert torch.equal(codes, ref["indices"])
    torch.testing.assert_close(vq.quantize.lookup(codes), ref["quant"], atol=1e-5, rtol=0)
    torch.testing.assert_close(vq.decode(ref["codes"]), ref["decoded"], atol=1e-4, rtol=0)
    assert vq.downsample == 8 and vq.codebook_size == 256


def test_vq_batches_larger_than_a_cpu_chunk_give_each_image_its_own_result(monkeypatch):
    """encode/decode split CPU batches into chunks (faster); every image comes out as it does alone
    (up to float rounding: oneDNN picks its conv algorithm by batch size)."""
    import gptimg_core.vq as vq_module

    vq, ref = parity_vq(), parity_ref("vq")
    side = ref["image"].shape[-1]
    monkeypatch.setattr(vq_module, "CPU_CHUNK_PIXELS", 2 * side * side)  # 2 images per chunk
    torch.manual_seed(0)
    images = torch.rand(5, 3, side, side) * 2 - 1
    codes = vq.encode(images)
    assert torch.equal(codes, torch.cat([vq.encode(im[None]) for im in images]))
    pixels = vq.decode(codes)
    assert pixels.shape == images.shape
    # 1e-4: conv algorithms differ by 1.3e-5 on some CPUs; another image's pixels would differ by ~0.1-1
    torch.testing.assert_close(pixels, torch.cat([vq.decode(c[None]) for c in codes]), atol=1e-4, rtol=0)
    assert vq_module._chunk((side, side), torch.device("cpu")) == 2
    assert vq_module._chunk((side, side), torch.device("meta")) >= 5  # no chunking off the CPU
