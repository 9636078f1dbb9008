"""The recipe's decoder stage (gptimg_core/train/finetune_decoder.py)."""

import pytest
import torch

from gptimg_core.builtin import builtin_path
from gptimg_core.checkpoint import load_vq
from gptimg_core.config import VQConfig
from gptimg_core.train.finetune_decoder import DecoderRecipe, evaluate_decoder, finetune_decoder
from gptimg_core.vq import VQModel


def _tiny_vq() -> VQModel:
    torch.manual_seed(0)
    cfg = VQConfig(
        ch=8, ch_mult=(1, 1, 2, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=64,
        embed_dim=8, image_size=64, norm_groups=4,
    )  # fmt: skip
    return VQModel(cfg).eval()


def test_finetune_trains_only_the_decoder_to_draw_canonical_codes():
    vq, table = _tiny_vq(), torch.arange(8) * 8  # an untrained VQ: codes are arbitrary, one per colour
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    flags = {k: p.requires_grad for k, p in vq.named_parameters()}
    recipe = DecoderRecipe(steps=150, batch=8, lr=1e-3, canonical_share=1.0)
    metrics = finetune_decoder(vq, table, recipe, seed=3)
    moved = {k for k, v in vq.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("decoder.") for k in moved) and any(k.startswith("post_quant_conv.") for k in moved)
    assert all(k.startswith(("decoder.", "post_quant_conv.")) for k in moved)  # encoder, codebook: frozen
    assert not vq.training and flags == {k: p.requires_grad for k, p in vq.named_parameters()}
    # Trained on canonical codes only, it learns to draw them (8.2 -> 10.7 dB measured) and not the raw
    # codes of the same scenes (8.1 dB; trained on raw codes only instead: 9.0 dB for both).
    before, after = metrics["before"], metrics["after"]
    assert after["psnr_canonical_db"] > before["psnr_canonical_db"] + 1.5, metrics
    assert after["psnr_canonical_db"] > after["psnr_raw_db"] + 1.5, metrics
    assert metrics["after"] == evaluate_decoder(vq, table, seed=4)  # the metrics describe the returned model


def test_finetune_rejects_a_table_that_is_not_one_code_per_colour():
    vq = load_vq(builtin_path("vq"))
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    with pytest.raises(ValueError, match=r"finetune_decoder: table must hold 8 codes .* got shape \(3,\)"):
        finetune_decoder(vq, torch.tensor([1, 2, 3]), DecoderRecipe(steps=1))
    assert all(torch.equal(v, before[k]) for k, v in vq.state_dict().items())  # the model is untouched
