"""Autoregressive sampling of image tokens: prefill the condition, then one token per step on a KV cache.

`generate` draws whole grids (optionally the likeliest of several draws per image); `run_sampler` is
the shared loop, which can also force known tokens into the sequence (token-level editing builds on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from .checks import check_callables, check_int
from .conditioning import Condition, prepare_condition
from .gpt import GPT
from .memory import check_memory
from .sampling import SamplingOptions, guide, sample

# callback(step, total, tokens_so_far (B, step)); raising from it cancels generation.
Callback = Callable[[int, int, Tensor], None]
# observe(t, token_t (B,), raw (rows, V): [cond; null] while guided, logits (B, V) token t is drawn from):
# the logits that predict position t, for every position in order.
Observer = Callable[[int, Tensor, Tensor, Tensor], None]


def attention_mask(key_ok: Tensor | None, start: int, n: int) -> Tensor | None:
    """Bool mask (B, 1, n, start + n) for n new rows at `start`, or None when plain causal suffices.

    key_ok (B, 1, 1, S_max) marks keys any row may see (padding of the condition is False); each
    row always sees itself, as in LlamaGen.
    """
    S = start + n
    if key_ok is None and (n == 1 or start == 0):
        return None
    q = torch.arange(start, S).view(n, 1)
    k = torch.arange(S).view(1, S)
    causal = (k <= q).to(key_ok.device if key_ok is not None else "cpu")  # (n, S)
    if key_ok is None:
        return causal.view(1, 1, n, S)
    allowed = causal & key_ok[..., :S]  # (B, 1, n, S)
    return allowed | (k == q).to(allowed.device)


def decode_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """The attention kernels for a decode loop. On CUDA, cuDNN's is left out: with it, the default, a
    first generation at a batch size ran several times slower (GPT-B, bf16, H200: 48-80 ms a step at
    batch 4 run for the first time, 10-11 ms at batch 1 run before; 11-16 ms at batch 4 with this list;
    bench/decode_speed.py), most likely a cuDNN plan built per new key length."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def run_sampler(
    gpt: GPT,
    cond: Condition,
    opts: SamplingOptions,
    *,
    known: Tensor | None = None,
    keep: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    observe: Observer | None = None,
) -> Tensor:
    """Sample a (B, N) raster sequence; where keep (B, N) is True the token comes from known (B, N).

    Runs of positions kept in every row are fed to the model in one step. `observe`, if given, sees the
    logits that predict every position, kept ones included (particles.py weighs fills by them).
    """
    N, B = gpt.cfg.block_size, cond.batch
    device = gpt.tok_embeddings.weight.device
    tokens = torch.zeros(B, N, dtype=torch.long, device=device)
    if keep is not None:
        keep = keep.to(device)
        tokens = torch.where(keep, known.to(device), tokens)
        all_kept = keep.all(0).tolist()  # python list: per-position "forced in every row"
    else:
        all_kept = [False] * N
    rows = cond.tokens.shape[0]  # 2B with guidance, B without
    cache = gpt.new_cache(rows)
    key_ok = cond.key_ok
    T = gpt.cfg.cls_token_num

    def guided(raw: Tensor, t: int) -> Tensor:
        return guide(raw, opts.guidance(t, N)) if rows == 2 * B else raw  # (B, V)

    with torch.no_grad(), decode_attention(device):
        logits = gpt(None, 0, cond=cond.tokens, cache=cache, mask=attention_mask(key_ok, 0, T), last_only=True)
        t = 0
        while t < N:
            raw = logits[:, -1]
            step_logits = guided(raw, t)
            if not all_kept[t]:
                drawn = sample(step_logits, opts, generator)
                tokens[:, t] = drawn if keep is None else torch.where(keep[:, t], tokens[:, t], drawn)
            if observe is not None:
                observe(t, tokens[:, t], raw, step_logits)
            n = 1
            while t + n < N and all_kept[t + n]:
                n += 1  # feed this token and the forced run after it in one step
            if callback is not None:
                callback(t + n, N, tokens[:, : t + n])
            # feed up to the next free token; an observer also needs the logits of a kept run to the end
            end = t + n if t + n < N else (N - 1 if observe is not None else t)
            if end == t:
                break
            if rows == 2 * B and opts.guidance(t + 1, N) is None:
                # guidance is over for good (it never comes back): drop the null half and its cache
                rows = B
                cache.keep(slice(0, B))
                key_ok = key_ok[:B] if key_ok is not None else None
            fed = tokens[:, t:end]
            if rows == 2 * B:
                fed = torch.cat([fed, fed])
            start = T + t
            out = gpt(fed, start, cache=cache, mask=attention_mask(key_ok, start, end - t), last_only=observe is None)
            if observe is not None:  # out[:, j] predicts the kept token t + 1 + j (the last one: the next step's)
                for j in range(end - t if t + n >= N else n - 1):
                    observe(t + 1 + j, tokens[:, t + 1 + j], out[:, j], guided(out[:, j], t + 1 + j))
            if t + n >= N:
                break
            logits = out[:, -1:]
            t += n
    return tokens


class OwnLikelihood:
    """An observer for run_sampler: each row's log-likelihood of its own tokens at the positions `free`
    (rows, N) marks (all when None), under the conditional model alone: the [cond] rows of the raw
    logits, no guidance, temperature 1. `total` (rows,) fp32."""

    def __init__(self, rows: int, device: torch.device, free: Tensor | None = None) -> None:
        self.rows, self.free = rows, free
        self.total = torch.zeros(rows, device=device)

    def __call__(self, t: int, token: Tensor, raw: Tensor, logits: Tensor) -> None:
        if self.free is not None and not bool(self.free[:, t].any()):
            return
        lp = raw[: self.rows].float().log_softmax(-1).gather(1, token[:, None]).squeeze(1)  # (rows,)
        self.total.add_(lp if self.free is None else torch.where(self.free[:, t], lp, 0.0))


def side_by_side(
    gpt: GPT,
    cond: Condition,
    opts: SamplingOptions,
    candidates: int,
    *,
    known: Tensor | None = None,
    keep: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    observe: Observer | None = None,
) -> Tensor:
    """Sample `candidates` sequences per image of cond in one batch -> (B*K, N), image b's in rows
    b*K .. b*K + K - 1; known/keep (B*K, N) and observe as run_sampler takes them. The callback sees each
    image's first candidate while drawing, but not the last step: the caller reports that with what it keeps."""
    K = candidates

    def report(step: int, total: int, tokens: Tensor) -> None:
        if step < total:
            callback(step, total, tokens[::K])

    report_to = report if callback is not None else None
    return run_sampler(
        gpt, cond.repeat(K), opts, known=known, keep=keep, generator=generator, callback=report_to, observe=observe
    )


def best_of(
    gpt: GPT,
    cond: Condition,
    opts: SamplingOptions,
    candidates: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Draw `candidates` sequences per image side by side and keep, for each image, the one the model
    finds likeliest under its condition (OwnLikelihood). -> (B, N). The callback sees each image's first
    candidate as it is drawn, and the kept ones at the last step."""
    B, K, N = cond.batch, candidates, gpt.cfg.block_size
    device = gpt.tok_embeddings.weight.device
    score = OwnLikelihood(B * K, device)
    tokens = side_by_side(gpt, cond, opts, K, generator=generator, callback=callback, observe=score)  # (B*K, N)
    kept = tokens.view(B, K, N)[torch.arange(B, device=device), score.total.view(B, K).argmax(1)]
    if callback is not None:
        callback(N, N, kept)
    return kept


def generate(
    gpt: GPT,
    cond: Tensor,
    *,
    cond_mask: Tensor | None = None,
    uncond: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    cfg_scale: float = 4.0,
    cfg_interval: int = -1,
    cfg_schedule: str = "constant",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    candidates: int = 1,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Sample image tokens (B, h, w) LongTensor.

    cond: class ids (B,) for c2i; caption features (B, T, C) with cond_mask (B, T) (bool or 0/1,
    left-padded) for t2i. uncond: the null branch of CFG (default: the model's stored null
    condition); for t2i encoded negative-prompt features with uncond_mask. cfg_scale 1 runs no null
    branch. top_k=1 is greedy. Same generator state, same tokens. candidates > 1 draws that many per
    image side by side and keeps the one whose tokens the model finds likeliest under the condition
    (best_of; the built-in t2i, 8 candidates: dev pairs 79.2% -> 85.5% of 619; builtin.py).
    """
    opts = SamplingOptions(cfg_scale, cfg_interval, cfg_schedule, temperature, top_k, top_p)
    opts.check("generate")
    check_int("generate", "candidates", candidates, minimum=1, hint=" (1 = one draw per image)")
    check_callables("generate", generator, callback)
    c = prepare_condition(gpt, cond, cond_mask, uncond, uncond_mask, guided=opts.uses_cfg, where="generate")
    check_memory(gpt, c.batch, candidates, guided=opts.uses_cfg, where="generate")
    if candidates == 1:
        tokens = run_sampler(gpt, c, opts, generator=generator, callback=callback)
    else:
        tokens = best_of(gpt, c, opts, candidates, generator=generator, callback=callback)
    g = gpt.cfg.grid
    return tokens.view(-1, g, g)
