"""Train the built-in GPTs on VQ tokens of shapes-world scenes: a t2i GPT jointly with a tiny T5
encoder, and a c2i GPT. Condition dropout trains the null condition used by CFG."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from ...compiled import can_compile
from ...config import GPTConfig
from ...gpt import GPT, attention_mask
from ...text_encoder import TextEncoder
from ...vq import VQModel
from ..shapes import describe
from .budget import StepClock
from .canonical import canonical_codes, canonicalize, flat_colours
from .data import class_batch, object_boxes, render_scenes, text_scenes
from .muon import Muon, hidden_matrices
from .precision import cpu_autocast

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
    bf16: bool = True  # bf16 autocast where the CPU has native bf16 matmuls (fp32 master weights)
    raw_inputs: float = 0.5  # share of sequences fed their raw codes (the rest their targets) as inputs
    # Share of sequences then fed as an inpainting edit reads them: raw codes with a random rectangle of
    # 1-5 x 1-5 tokens of targets (the t2i recipe: a quarter; what it did to inpainting and to generation,
    # at a third and at a quarter of sequences, is measured in MODEL_CARD.md).
    edit_inputs: float = 0.0
    # Share of those edit sequences whose rectangle is instead one object's box grown by 0-4 px, the hole an
    # inpainting mask over an object leaves (needs the pool's boxes; t2i only).
    edit_holes: float = 0.0
    reading_order: bool = False  # t2i: two-object prompts name first the object a raster scan meets first
    compile: bool = False  # torch.compile the GPT's training steps (on CPU: needs a C++ compiler, else eager)
    # Each batch runs forward/backward in chunks of this many sequences, gradients summed: the same
    # update with smaller activations, and a little faster (docs/training-notes.md, stage 4).
    micro_batch: int = 32
    # Muon for the hidden matrices (the blocks' and T5's Linear layers) at muon_lr_scale x lr, AdamW for the
    # rest at lr (muon.py); False: AdamW for everything. The learning-rate sweep that picked 3x is in
    # docs/training-notes.md ("Muon for the hidden matrices").
    muon: bool = True
    muon_lr_scale: float = 3.0


@dataclass
class TokenPool:
    """Tokenised training scenes: the VQ's codes (n, N), training targets (the codes with flat tokens
    made canonical, see canonical.py) and each scene's prompt (t2i) or class id (c2i); t2i pools also
    keep each scene's object boxes (data.object_boxes) for the recipe's edit holes."""

    codes: Tensor
    targets: Tensor
    conds: list
    boxes: Tensor | None = None


def tokenize_scenes(
    vq: VQModel,
    n: int,
    kind: str,
    seed: int,
    table: Tensor | None = None,
    chunk: int = 256,
    reading_order: bool = False,
) -> tuple[TokenPool, Tensor]:
    """Render and VQ-encode n training scenes -> (pool, table). table: each palette colour's canonical
    code; None picks the commonest code of the pool's flat tokens (pass it on to the next pool)."""
    rng = np.random.default_rng(seed)
    codes, colours, conds, boxes = [], [], [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        if kind == "t2i":
            scenes = text_scenes(rng, m, reading_order=reading_order)
            x, c = render_scenes(scenes), [describe(s.spec) for s in scenes]
            boxes.append(object_boxes(scenes))
        else:
            x, c = class_batch(rng, m)
        codes.append(vq.encode(x).flatten(1))
        colours.append(flat_colours(x, vq.downsample).flatten(1))
        conds += list(c) if kind == "t2i" else c.tolist()
    codes, colours = torch.cat(codes), torch.cat(colours)
    table = canonical_codes(codes, colours) if table is None else table
    pool = TokenPool(codes, canonicalize(codes, colours, table), conds, torch.cat(boxes) if boxes else None)
    return pool, table


def _inputs(pool: TokenPool, idx: Tensor, recipe: GPTRecipe, g: torch.Generator) -> Tensor:
    """Teacher-forcing inputs: raw codes for a recipe.raw_inputs share of the batch, else the targets.
    Raw inputs teach the model to read codes it does not emit (an image encoded for inpainting); with
    recipe.edit_inputs, that share of sequences reads raw codes around a rectangle of targets."""
    raw = torch.rand(len(idx), generator=g) < recipe.raw_inputs
    inputs = torch.where(raw[:, None], pool.codes[idx], pool.targets[idx])
    if recipe.edit_inputs > 0:  # draws nothing more when off, so the shipped recipe's batches stay the same
        edit = (torch.rand(len(idx), generator=g) < recipe.edit_inputs)[:, None]
        grid = math.isqrt(inputs.shape[1])
        inside = token_rectangles(len(idx), grid, g)
        if recipe.edit_holes > 0:
            if pool.boxes is None:
                raise ValueError("GPTRecipe.edit_holes needs a pool with object boxes (a t2i pool)")
            hole = (torch.rand(len(idx), generator=g) < recipe.edit_holes)[:, None]
            inside = torch.where(hole, object_holes(pool.boxes[idx], grid, g), inside)
        inputs = torch.where(edit, torch.where(inside, pool.targets[idx], pool.codes[idx]), inputs)
    return inputs


def token_rectangles(n: int, grid: int, g: torch.Generator, largest: int = 5) -> Tensor:
    """n random rectangles of 1..largest x 1..largest tokens (clipped at the border) on a grid x grid
    image, as (n, grid * grid) bool in raster order."""
    top, left = torch.randint(0, grid, (2, n, 1, 1), generator=g)
    height, width = torch.randint(1, largest + 1, (2, n, 1, 1), generator=g)
    rows, cols = torch.arange(grid)[None, :, None], torch.arange(grid)[None, None, :]
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    return inside.flatten(1)


def object_holes(boxes: Tensor, grid: int, g: torch.Generator, margin: float = 4 / 64) -> Tensor:
    """For each scene's boxes (n, 2, 4) (data.object_boxes), the tokens of a grid x grid image that one
    of its objects' box, grown by a random 0..margin (image sides), touches: (n, grid * grid) bool in
    raster order, the hole an inpainting mask over that object leaves."""
    n = len(boxes)
    pick = torch.randint(0, boxes.shape[1], (n,), generator=g)
    pick = torch.where(boxes[torch.arange(n), pick, 0].isnan(), 0, pick)  # a scene with one object: that one
    box = boxes[torch.arange(n), pick]  # (n, 4)
    grow = torch.rand(n, 1, generator=g) * margin
    x0, y0, x1, y1 = (box + torch.cat([-grow, -grow, grow, grow], 1)).unbind(1)
    lo, hi = torch.arange(grid) / grid, (torch.arange(grid) + 1) / grid
    rows = (lo < y1[:, None]) & (hi > y0[:, None])  # (n, grid)
    cols = (lo < x1[:, None]) & (hi > x0[:, None])
    return (rows[:, :, None] & cols[:, None, :]).flatten(1)


def _lr(recipe: GPTRecipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    p = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def _optimizers(params: list[Tensor], hidden: list[Tensor], recipe: GPTRecipe) -> list[torch.optim.Optimizer]:
    """AdamW for params (weight decay on matrices only); with recipe.muon, Muon for the hidden ones (its
    learning rate recipe.muon_lr_scale times AdamW's). Each param group's "lr_scale" is its learning rate
    over the schedule's."""
    muon = {id(p) for p in hidden} if recipe.muon else set()
    rest = [p for p in params if id(p) not in muon]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": recipe.weight_decay, "lr_scale": 1.0},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    opts: list[torch.optim.Optimizer] = [torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.95))]
    if muon:
        hidden_params = [p for p in params if id(p) in muon]
        muon_opt = Muon(hidden_params, lr=recipe.lr * recipe.muon_lr_scale, weight_decay=recipe.weight_decay)
        muon_opt.param_groups[0]["lr_scale"] = recipe.muon_lr_scale
        opts.append(muon_opt)
    return opts


def token_loss(gpt: GPT, cond: Tensor, inputs: Tensor, targets: Tensor, key_ok: Tensor | None) -> Tensor:
    """Next-token cross-entropy over the image tokens: position i reads inputs[:, :i] and predicts
    targets[:, i]. inputs, targets (B, N); key_ok (B, 1, 1, S) or None."""
    T, N = gpt.cfg.cls_token_num, inputs.shape[1]
    mask = attention_mask(key_ok, 0, T + N - 1)
    logits = gpt(inputs[:, :-1], 0, cond=cond, mask=mask)  # (B, T + N - 1, V)
    return F.cross_entropy(logits[:, T - 1 :].reshape(-1, logits.shape[-1]), targets.reshape(-1))


@contextlib.contextmanager
def _fast_math(bf16: bool) -> Iterator[None]:
    """Forward-pass settings for CPU training: bf16 autocast (only where oneDNN has native bf16; emulated
    bf16 would be slower) and the plain math attention, whose backward with a padding mask is the faster
    one on CPU (timings: docs/training-notes.md)."""
    with sdpa_kernel(SDPBackend.MATH), cpu_autocast(bf16):
        yield


def _trainable(gpt: GPT, recipe: GPTRecipe) -> GPT:
    """The module the training steps call: gpt itself, or a compiled view of it sharing its weights.
    Compiled, a t2i step takes 0.27 s instead of 0.37 s on 2 EPYC cores (bf16; about 30 s to compile)."""
    if not recipe.compile:
        return gpt
    if not can_compile():
        log.warning("compile: no C++ compiler (g++ or $CXX) found, which torch.compile needs on CPU; training eager")
        return gpt
    return torch.compile(gpt)


LossOn = Callable[[slice], Tensor]  # the mean loss of a slice of the drawn batch


def micro_slices(batch: int, micro_batch: int) -> list[slice]:
    """The batch's rows in consecutive chunks of at most micro_batch."""
    if micro_batch < 1:
        raise ValueError(f"GPTRecipe.micro_batch must be >= 1, got {micro_batch}")
    return [slice(i, min(i + micro_batch, batch)) for i in range(0, batch, micro_batch)]


@torch.enable_grad()  # callers may have turned autograd off (generation code does)
def _fit(
    name: str,
    params: list[Tensor],
    hidden: list[Tensor],
    recipe: GPTRecipe,
    draw: Callable[[torch.Generator], LossOn],
    seed: int,
) -> dict:
    """AdamW (and Muon for the hidden matrices, a subset of params) with warmup + cosine and gradient
    clipping. draw(generator) draws a batch and returns the function that gives the mean loss of a slice
    of it; each micro-batch's loss, weighted by its share of the batch, is backpropagated at once, so the
    summed gradient is the whole batch's."""
    opts = _optimizers(params, hidden, recipe)
    g = torch.Generator().manual_seed(seed)
    parts = micro_slices(recipe.batch, recipe.micro_batch)
    t0, losses, clock = time.perf_counter(), [], StepClock()
    for step in range(recipe.steps):
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = group["lr_scale"] * _lr(recipe, step)
        loss_on = draw(g)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        total = 0.0
        for part in parts:
            with _fast_math(recipe.bf16):
                loss = loss_on(part) * ((part.stop - part.start) / recipe.batch)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for opt in opts:
            opt.step()
        losses.append(total)
        clock.tick()
        if step % 100 == 0 or step == recipe.steps - 1:
            log.info(
                "%s step %d/%d loss %.3f (%.0fs)",
                name,
                step,
                recipe.steps,
                np.mean(losses[-50:]),
                time.perf_counter() - t0,
            )
    return {
        "final_loss": round(float(np.mean(losses[-100:])), 3),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "step_seconds": round(clock.mean(), 4),
    }


def train_t2i(cfg: GPTConfig, te: TextEncoder, pool: TokenPool, recipe: GPTRecipe, seed: int = 0) -> tuple[GPT, dict]:
    """Jointly train the t2i GPT and the T5 encoder; the null caption (uncond_embedding) is learned."""
    torch.manual_seed(seed)
    gpt = GPT(cfg)
    null = gpt.cls_embedding.uncond_embedding
    null.requires_grad_(True)  # a buffer in LlamaGen's layout, learned here
    gpt.train()
    te.model.train()
    net = _trainable(gpt, recipe)
    image_keys = torch.ones(recipe.batch, cfg.block_size, dtype=torch.bool)

    def draw(g: torch.Generator) -> LossOn:
        idx = torch.randint(len(pool.conds), (recipe.batch,), generator=g)
        drop = torch.rand(recipe.batch, generator=g) < recipe.cond_drop
        inputs, targets, prompts = (
            _inputs(pool, idx, recipe, g),
            pool.targets[idx],
            [pool.conds[i] for i in idx.tolist()],
        )

        def loss_on(s: slice) -> Tensor:
            feats, mask = te.embed(prompts[s])  # (b, T, C), (b, T)
            feats = torch.where(drop[s, None, None], null.expand_as(feats), feats)  # the null keeps the prompt's mask
            key_ok = torch.cat([mask, image_keys[s]], 1)[:, None, None]
            return token_loss(net, feats, inputs[s], targets[s], key_ok)

        return loss_on

    params = list(gpt.parameters()) + list(te.model.parameters()) + [null]
    hidden = hidden_matrices(gpt, head="output") + hidden_matrices(te.model)
    metrics = _fit("t2i", params, hidden, recipe, draw, seed)
    metrics["compiled"] = net is not gpt
    null.requires_grad_(False)
    gpt.eval()
    te.model.eval()
    return gpt, metrics


def transfer_weights(dst: GPT, src: GPT) -> None:
    """Copy src's transformer (token embeddings, blocks, norm, output) into dst; dst keeps its own
    condition embedding. Raises ValueError naming the first tensor whose shape differs."""
    theirs, mine = src.state_dict(), dst.state_dict()
    body = [k for k in mine if not k.startswith("cls_embedding.")]
    for k in body:
        if k not in theirs or theirs[k].shape != mine[k].shape:
            got = tuple(theirs[k].shape) if k in theirs else "nothing"
            raise ValueError(
                f"transfer_weights: the models' transformers differ at {k}: {tuple(mine[k].shape)} here, {got} in "
                f"the source; give both the same dim, n_layer, n_head, vocab_size and block_size"
            )
    for name in ("rope_base", "norm_eps"):  # settings that shape no tensor
        here, there = getattr(dst.cfg, name), getattr(src.cfg, name)
        if here != there:
            raise ValueError(f"transfer_weights: {name} is {here} here, {there} in the source; give both the same")
    dst.load_state_dict({**mine, **{k: theirs[k] for k in body}})


def train_c2i(
    cfg: GPTConfig, pool: TokenPool, recipe: GPTRecipe, seed: int = 0, init: GPT | None = None
) -> tuple[GPT, dict]:
    """Train the class-conditional GPT; dropped labels become the null class (id num_classes).

    init: a trained GPT of the same transformer size (the t2i one) to start from. It already draws
    the shapes; only the class embedding starts from scratch (docs/training-notes.md, stage 5)."""
    torch.manual_seed(seed)
    gpt = GPT(cfg)
    if init is not None:
        transfer_weights(gpt, init)
    gpt.train()
    net = _trainable(gpt, recipe)
    ids = torch.as_tensor(pool.conds)

    def draw(g: torch.Generator) -> LossOn:
        idx = torch.randint(len(ids), (recipe.batch,), generator=g)
        y = ids[idx].masked_fill(torch.rand(recipe.batch, generator=g) < recipe.cond_drop, cfg.num_classes)
        inputs, targets = _inputs(pool, idx, recipe, g), pool.targets[idx]
        return lambda s: token_loss(net, y[s], inputs[s], targets[s], None)

    metrics = _fit("c2i", list(gpt.parameters()), hidden_matrices(gpt, head="output"), recipe, draw, seed)
    metrics["compiled"] = net is not gpt
    gpt.eval()
    return gpt, metrics
