"""Train the built-in GPTs on VQ tokens of shapes-world scenes: a t2i GPT jointly with a tiny T5
encoder, and a c2i GPT. Condition dropout trains the null condition used by CFG."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import GPTConfig
from ..generate import _attention_mask
from ..gpt import GPT
from ..text_encoder import TextEncoder
from ..vq import VQModel
from .data import class_batch, text_batch

log = logging.getLogger(__name__)


@dataclass
class GPTRecipe:
    steps: int = 1200
    batch: int = 64
    lr: float = 1.5e-3
    warmup: int = 60
    weight_decay: float = 0.05
    cond_drop: float = 0.1  # probability of replacing the condition with the null one
    scenes: int = 40_000  # size of the pre-tokenised scene pool


def tokenize_scenes(vq: VQModel, n: int, kind: str, seed: int, chunk: int = 256) -> tuple[Tensor, list]:
    """Render and VQ-encode n training scenes -> codes (n, h*w) and prompts (t2i) or class ids (c2i)."""
    rng = np.random.default_rng(seed)
    codes, conds = [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x, c = text_batch(rng, m) if kind == "t2i" else class_batch(rng, m)
        codes.append(vq.encode(x).flatten(1))
        conds += list(c) if kind == "t2i" else c.tolist()
    return torch.cat(codes), conds


def _lr(recipe: GPTRecipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    p = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def _optimizer(params: list[torch.nn.Parameter], recipe: GPTRecipe) -> torch.optim.Optimizer:
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.95))


def token_loss(gpt: GPT, cond: Tensor, codes: Tensor, key_ok: Tensor | None) -> Tensor:
    """Next-token cross-entropy over the image tokens. codes (B, N); key_ok (B, 1, 1, S) or None."""
    T, N = gpt.cfg.cls_token_num, codes.shape[1]
    mask = _attention_mask(key_ok, 0, T + N - 1)
    logits = gpt(codes[:, :-1], 0, cond=cond, mask=mask)  # (B, T + N - 1, V)
    return F.cross_entropy(logits[:, T - 1 :].reshape(-1, logits.shape[-1]), codes.reshape(-1))


def train_t2i(
    cfg: GPTConfig, te: TextEncoder, codes: Tensor, prompts: list[str], recipe: GPTRecipe, seed: int = 0
) -> tuple[GPT, dict]:
    """Jointly train the t2i GPT and the T5 encoder; the null caption (uncond_embedding) is learned."""
    torch.manual_seed(seed)
    gpt = GPT(cfg)
    null = gpt.cls_embedding.uncond_embedding
    null.requires_grad_(True)  # a buffer in LlamaGen's layout, learned here
    params = list(gpt.parameters()) + list(te.model.parameters()) + [null]
    opt = _optimizer(params, recipe)
    gpt.train()
    te.model.train()
    g = torch.Generator().manual_seed(seed)
    t0, losses = time.perf_counter(), []
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(recipe, step)
        idx = torch.randint(len(prompts), (recipe.batch,), generator=g)
        feats, mask = te.embed([prompts[i] for i in idx.tolist()])  # (B, T, C), (B, T)
        drop = torch.rand(recipe.batch, generator=g) < recipe.cond_drop
        feats = torch.where(drop[:, None, None], null.expand_as(feats), feats)
        key_ok = torch.cat([mask, torch.ones(recipe.batch, cfg.block_size, dtype=torch.bool)], 1)[:, None, None]
        loss = token_loss(gpt, feats, codes[idx], key_ok)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == recipe.steps - 1:
            log.info(
                "t2i step %d/%d loss %.3f (%.0fs)", step, recipe.steps, np.mean(losses[-50:]), time.perf_counter() - t0
            )
    null.requires_grad_(False)
    gpt.eval()
    te.model.eval()
    return gpt, {
        "final_loss": round(float(np.mean(losses[-100:])), 3),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }


def train_c2i(cfg: GPTConfig, codes: Tensor, labels: list[int], recipe: GPTRecipe, seed: int = 0) -> tuple[GPT, dict]:
    """Train the class-conditional GPT; dropped labels become the null class (id num_classes)."""
    torch.manual_seed(seed)
    gpt = GPT(cfg)
    params = list(gpt.parameters())
    opt = _optimizer(params, recipe)
    gpt.train()
    ids = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    t0, losses = time.perf_counter(), []
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(recipe, step)
        idx = torch.randint(len(ids), (recipe.batch,), generator=g)
        y = ids[idx].masked_fill(torch.rand(recipe.batch, generator=g) < recipe.cond_drop, cfg.num_classes)
        loss = token_loss(gpt, y, codes[idx], None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == recipe.steps - 1:
            log.info(
                "c2i step %d/%d loss %.3f (%.0fs)", step, recipe.steps, np.mean(losses[-50:]), time.perf_counter() - t0
            )
    gpt.eval()
    return gpt, {
        "final_loss": round(float(np.mean(losses[-100:])), 3),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
