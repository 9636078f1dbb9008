"""Train a LlamaGen-layout VQ tokenizer: reconstruction + codebook/commitment losses, then a
PatchGAN with hinge loss (VQGAN recipe). Dead codes are re-seeded from encoder outputs."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import VQConfig
from ..shapes.world import COLOUR_NAMES
from ..vq import VQModel
from .budget import StepClock
from .canonical import flat_colours
from .data import mixed_tokenizer_batch, text_batch
from .discriminator import PatchDiscriminator, d_hinge, g_hinge
from .precision import cpu_autocast

log = logging.getLogger(__name__)


@dataclass
class VQRecipe:
    steps: int = 22000
    batch: int = 16
    lr: float = 3e-4
    beta: float = 0.25  # commitment weight
    gan_start: float = 0.85  # fraction of steps before the discriminator joins (the whole-image phase)
    gan_weight: float = 0.1
    restart_every: int = 25  # steps between dead-code restarts (during the first 0.8 of training)
    crop: int = 32  # train on random crops this size (4x cheaper; the VQ is convolutional) ...
    crop_until: float = 0.85  # ... for this fraction of the steps, then on whole images
    # Small objects are what the VQ gets wrong; these two put more of the loss on them (docs/training-notes.md).
    dense: bool = True  # train on crowded scenes (tokenizer_batch) instead of prompt scenes
    object_weight: float = 4.0  # extra reconstruction weight on pixels within 2 px of an object
    # Share of each dense batch drawn as scenes of small objects only, small_star_share of those objects stars:
    # small stars were the shapes the VQ lost (the built-in recipe: half).
    small_share: float = 0.0
    small_star_share: float = 0.5
    # bf16 autocast for the encoder, decoder and discriminator where the CPU has native bf16 (precision.py);
    # the codebook search, losses and weights stay fp32: faster at the same quality (docs/training-notes.md).
    # The built-in recipe turns it on (train/__main__.py).
    bf16: bool = False
    # Flat codes: every token whose patch is one flat palette colour is quantised to that colour's own code
    # (code index = palette index) while training, so the decoder never reads edges from flat tokens and the
    # encoder learns to put them in the edge tokens, and the GPTs' canonical targets (canonical.py) are the
    # VQ's own codes instead of a lossy rewrite of them. Commitment (flat_beta) pulls the encoder's flat
    # latents onto those codes, so encoding a flat patch gives them too; dead codes restart on edge tokens'
    # latents only, else they land among the flat ones and take their patches at inference. The A/B that chose
    # flat_beta 4 is in docs/training-notes.md ("Flat codes").
    flat_codes: bool = False
    flat_beta: float = 0.25  # commitment weight of flat tokens (with flat_codes)


def quantize(
    vq: VQModel, z: Tensor, beta: float, flat: Tensor | None = None, flat_beta: float = 0.25
) -> tuple[Tensor, Tensor, Tensor]:
    """Straight-through quantisation of z (B, e, h, w) on the l2 sphere -> (z_q, vq loss, codes), in fp32
    even under autocast: a bf16 cosine would pick the wrong code among near-equal neighbours. flat (B, h, w):
    where >= 0, the code to use there (a flat patch's own code), taken as is: no straight-through."""
    with torch.autocast("cpu", enabled=False):
        return _quantize_fp32(vq, z.float(), beta, flat, flat_beta)


def _quantize_fp32(
    vq: VQModel, z: Tensor, beta: float, flat: Tensor | None, flat_beta: float
) -> tuple[Tensor, Tensor, Tensor]:
    B, e, h, w = z.shape
    zn = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, e), dim=-1)  # (Bhw, e)
    book = vq.quantize.codebook()
    codes = (zn @ book.T).argmax(1)  # nearest on the sphere = largest cosine
    flat = flat.flatten() if flat is not None else torch.full_like(codes, -1)  # (Bhw,); -1: not a flat patch
    forced = flat >= 0
    codes = torch.where(forced, flat, codes)
    zq = book[codes]
    commit = torch.where(forced, flat_beta, beta)  # (Bhw,)
    loss = ((zq - zn.detach()).square().mean(1) + commit * (zn - zq.detach()).square().mean(1)).mean()
    # a flat token's code does not depend on the encoder: the decoder's gradient goes to the code itself;
    # every other token is straight-through
    zq = torch.where(forced[:, None], zq, zn + (zq - zn).detach())
    return zq.view(B, h, w, e).permute(0, 3, 1, 2), loss, codes.view(B, h, w)


def pixel_weights(x: Tensor, object_weight: float) -> Tensor:
    """Per-pixel loss weights (B, 1, H, W): 1, plus object_weight within 2 px of a non-background
    pixel (the background is each image's per-channel median colour)."""
    bg = x.flatten(2).median(-1).values[:, :, None, None]  # (B, 3, 1, 1)
    fg = ((x - bg).abs().amax(1, keepdim=True) > 0.02).float()  # (B, 1, H, W)
    return 1.0 + object_weight * F.max_pool2d(fg, 5, stride=1, padding=2)


def reconstruction_loss(y: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """L1 + MSE of y against x, weighted per pixel by w (B, 1, H, W) and normalised by w's mean."""
    err = y - x
    return (w * (err.abs() + err.square())).mean() / w.mean()


def cosine_lr(base: float, step: int, steps: int) -> float:
    """base at step 0, falling along a half cosine to 0 at step == steps."""
    return base * 0.5 * (1 + math.cos(math.pi * step / steps))


def random_crops(x: Tensor, size: int, rng: np.random.Generator) -> Tensor:
    """A random size x size crop of each image (B, C, H, W), at multiples of 8 so tokens stay aligned."""
    H = x.shape[-1]
    offsets = rng.integers(0, (H - size) // 8 + 1, size=(x.shape[0], 2)) * 8
    return torch.stack([im[:, r : r + size, c : c + size] for im, (r, c) in zip(x, offsets.tolist(), strict=True)])


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of two pixel batches in [-1, 1], on the 8-bit scale."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) * 127.5).pow(2).mean().item()
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


@torch.enable_grad()  # callers may have turned autograd off (generation code does)
def train_vq(cfg: VQConfig, recipe: VQRecipe, seed: int = 0) -> tuple[VQModel, dict]:
    """Train from scratch; returns the model (eval) and metrics (PSNR, codebook usage, time)."""
    if recipe.flat_codes and cfg.codebook_size <= len(COLOUR_NAMES):
        raise ValueError(
            f"train_vq: VQRecipe.flat_codes gives codes 0-{len(COLOUR_NAMES) - 1} to the flat palette colours, so the "
            f"codebook needs more than {len(COLOUR_NAMES)} codes; got codebook_size {cfg.codebook_size}"
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vq = VQModel(cfg)
    disc = PatchDiscriminator()
    opt = torch.optim.Adam(vq.parameters(), lr=recipe.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=recipe.lr, betas=(0.9, 0.99))
    used = torch.zeros(cfg.codebook_size, dtype=torch.bool)
    gan_from = int(recipe.steps * recipe.gan_start)
    t0, clock = time.perf_counter(), StepClock()
    for step in range(recipe.steps):
        lr = cosine_lr(recipe.lr, step, recipe.steps)
        for g in opt.param_groups + opt_d.param_groups:
            g["lr"] = lr
        if recipe.dense:
            x = mixed_tokenizer_batch(rng, recipe.batch, recipe.small_share, recipe.small_star_share)
        else:
            x = text_batch(rng, recipe.batch)[0]
        xw = torch.cat([x, pixel_weights(x, recipe.object_weight)], 1)  # (B, 4, H, W)
        if step < recipe.crop_until * recipe.steps:
            xw = random_crops(xw, recipe.crop, rng)
        x, w = xw[:, :3], xw[:, 3:]
        with cpu_autocast(recipe.bf16):
            z = vq.latent(x)
            flat = flat_colours(x, cfg.downsample) if recipe.flat_codes else None
            zq, q_loss, codes = quantize(vq, z, recipe.beta, flat, recipe.flat_beta)
            y = vq.decode_latent(zq).float()
            rec = reconstruction_loss(y, x, w)
            loss = rec + q_loss
            if step >= gan_from:
                loss = loss + recipe.gan_weight * g_hinge(disc(y).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= gan_from:
            with cpu_autocast(recipe.bf16):
                d_loss = d_hinge(disc(x).float(), disc(y.detach()).float())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        used[codes.flatten()] = True
        if (step + 1) % recipe.restart_every == 0 and step < 0.8 * recipe.steps:
            if recipe.flat_codes:
                used[: len(COLOUR_NAMES)] = True  # the flat colours' own codes stay
            _restart_dead(vq, z.detach().float(), used, None if flat is None else flat < 0)
            used.zero_()
        clock.tick()
        if step % 100 == 0 or step == recipe.steps - 1:
            log.info(
                "vq step %d/%d rec %.4f q %.4f psnr %.1f (%.0fs)",
                step,
                recipe.steps,
                rec.item(),
                q_loss.item(),
                psnr(y.detach(), x),
                time.perf_counter() - t0,
            )
    vq.eval()
    step_seconds = clock.mean()
    metrics = evaluate_vq(vq, seed + 1)
    metrics["step_seconds"] = round(step_seconds, 4)
    metrics["train_seconds"] = round(time.perf_counter() - t0, 1)
    return vq, metrics


@torch.no_grad()
def _restart_dead(vq: VQModel, z: Tensor, used: Tensor, where: Tensor | None = None) -> None:
    """Move codes unused since the last restart onto random current encoder outputs (of the tokens where
    `where` (B, h, w) is True, if given: not onto flat patches, whose codes are fixed)."""
    dead = (~used).nonzero().flatten()
    if len(dead) == 0:
        return
    e = z.shape[1]
    pool = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, e), dim=-1)
    if where is not None and bool(where.any()):
        pool = pool[where.flatten()]
    pick = pool[torch.randint(len(pool), (len(dead),))]
    vq.quantize.embedding.weight[dead] = pick + 0.01 * torch.randn_like(pick)


@torch.no_grad()
def evaluate_vq(vq: VQModel, seed: int, batches: int = 8, batch: int = 64) -> dict:
    """Reconstruction PSNR and codebook usage on fresh scenes (train and held-out triples alike)."""
    rng = np.random.default_rng(seed)
    scores, seen = [], torch.zeros(vq.codebook_size, dtype=torch.bool)
    for _ in range(batches):
        x, _ = text_batch(rng, batch, split="any")
        codes = vq.encode(x)
        seen[codes.flatten()] = True
        scores.append(psnr(vq.decode(codes), x))
    return {"psnr_db": round(float(np.mean(scores)), 2), "codebook_usage": round(seen.float().mean().item(), 3)}
