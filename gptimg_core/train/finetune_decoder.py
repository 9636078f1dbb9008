"""Teach the VQ's decoder to draw from canonical codes (canonical.py).

The GPTs learn targets in which every flat token carries its colour's one canonical code, so the
flat tokens beside an edge no longer say where the edge runs; the decoder must read that from the
edge tokens alone. This fine-tunes the decoder (and post_quant_conv) on a mix of raw and canonical
codes of the same scenes. The encoder and codebook stay frozen, so every image encodes to the same
codes as before and the tokenised pools stay valid. Measured on the built-in VQ (600 scenes, the
checker): round trips through canonical codes pass 54.2% with the decoder as trained, 75.8% after
2,000 steps of this; through raw codes 81.8% and 82.2%.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..shapes.world import COLOUR_NAMES
from ..vq import VQModel
from .budget import StepClock
from .canonical import canonicalize, flat_colours
from .data import mixed_tokenizer_batch, text_batch
from .train_vq import cosine_lr, pixel_weights, psnr, reconstruction_loss

log = logging.getLogger(__name__)


@dataclass
class DecoderRecipe:
    steps: int = 1600
    batch: int = 16
    lr: float = 1e-4  # cosine to 0; the VQ's own run ended at 0 from 3e-4
    canonical_share: float = 0.5  # share of each batch decoded from canonical codes, the rest from raw codes
    object_weight: float = 4.0  # as the VQ's recipe: more weight on pixels near objects
    # Share of each batch drawn as scenes of small objects only, small_star_share of those objects stars.
    # Small stars were the VQ's worst shape: of 400 evaluation scenes, small-star ones passed 2 of 48 through
    # canonical codes (3 raw) without this; the shipped decoder, trained with it, 13 of 48 (25 raw).
    small_share: float = 0.5
    small_star_share: float = 0.5


def decoder_parameters(vq: VQModel) -> list[torch.nn.Parameter]:
    """What the fine-tune trains: everything after the codebook lookup."""
    return [*vq.post_quant_conv.parameters(), *vq.decoder.parameters()]


@torch.enable_grad()  # callers may have turned autograd off
def finetune_decoder(vq: VQModel, table: Tensor, recipe: DecoderRecipe, seed: int = 0) -> dict:
    """Fine-tune vq's decoder in place on raw and canonical codes (table: each palette colour's
    canonical code, from canonical_codes) -> metrics. vq is left in eval mode."""
    if table.shape != (len(COLOUR_NAMES),):
        raise ValueError(
            f"finetune_decoder: table must hold {len(COLOUR_NAMES)} codes (one per palette colour, from "
            f"canonical_codes), got shape {tuple(table.shape)}"
        )
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    before = evaluate_decoder(vq, table, seed + 1)
    train = decoder_parameters(vq)
    flags = {p: p.requires_grad for p in vq.parameters()}
    for p in vq.parameters():
        p.requires_grad_(False)
    for p in train:
        p.requires_grad_(True)
    opt = torch.optim.Adam(train, lr=recipe.lr, betas=(0.9, 0.99))
    t0, clock = time.perf_counter(), StepClock()
    vq.train()
    try:
        for step in range(recipe.steps):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(recipe.lr, step, recipe.steps)
            x = mixed_tokenizer_batch(rng, recipe.batch, recipe.small_share, recipe.small_star_share)
            with torch.no_grad():
                zq = vq.quantize.lookup(_mixed_codes(vq, x, table, recipe.canonical_share, g))
            loss = reconstruction_loss(vq.decode_latent(zq), x, pixel_weights(x, recipe.object_weight))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock.tick()
            if step % 200 == 0 or step == recipe.steps - 1:
                log.info(
                    "decoder step %d/%d loss %.4f (%.0fs)", step, recipe.steps, loss.item(), time.perf_counter() - t0
                )
    finally:
        vq.eval()
        for p, flag in flags.items():
            p.requires_grad_(flag)
    seconds, step_seconds = round(time.perf_counter() - t0, 1), round(clock.mean(), 4)
    after = evaluate_decoder(vq, table, seed + 1)
    return {"before": before, "after": after, "train_seconds": seconds, "step_seconds": step_seconds}


def _mixed_codes(vq: VQModel, x: Tensor, table: Tensor, share: float, g: torch.Generator) -> Tensor:
    """x's codes (B, h, w), canonical for a share of the images, raw for the rest."""
    codes = vq.encode(x)
    canon = canonicalize(codes, flat_colours(x, vq.downsample), table)
    pick = torch.rand(len(x), generator=g) < share
    return torch.where(pick[:, None, None], canon, codes)


@torch.no_grad()
def evaluate_decoder(vq: VQModel, table: Tensor, seed: int, batches: int = 4, batch: int = 64) -> dict:
    """Reconstruction PSNR from raw and from canonical codes of fresh prompt scenes."""
    rng = np.random.default_rng(seed)
    raw, canon = [], []
    for _ in range(batches):
        x, _ = text_batch(rng, batch, split="any")
        codes = vq.encode(x)
        raw.append(psnr(vq.decode(codes), x))
        canon.append(psnr(vq.decode(canonicalize(codes, flat_colours(x, vq.downsample), table)), x))
    return {"psnr_raw_db": round(float(np.mean(raw)), 2), "psnr_canonical_db": round(float(np.mean(canon)), 2)}
