"""Export-only wrappers around LlamaGen's GPT with the KV cache as explicit tensors in and out: the graphs
that onnx_export.py writes. They reuse the GPT's own layers (wqkv, wo, feed-forward, norms, embeddings,
apply_rope, the RoPE table); only the cache moves from in-place writes to inputs and outputs.

The RoPE table is baked in (a constant of the graph), not fed: it is fixed by the config (grid, head size,
base), tiny ((cls + grid**2) x head_dim/2 x 2 floats), and a position is implied by the past's length, so
the graph gathers its own rows and a runtime can neither feed a wrong table nor needs a copy of rope_2d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gpt import GPT, Attention, apply_rope, rope_2d


def allowed_keys(cond_mask: Tensor, past: int | Tensor, n: int | Tensor, cls: int) -> Tensor:
    """Bool (R, 1, n, S) of the keys that n new rows at sequence positions past..past+n-1 may see, S = past + n:
    causal, never the condition's padding (cond_mask (R, cls) False), always itself (as GPTState's mask)."""
    R = cond_mask.shape[0]
    S = past + n
    image = torch.ones(R, S - cls, dtype=torch.bool, device=cond_mask.device)
    key_ok = torch.cat([cond_mask, image], dim=1)  # (R, S)
    q = torch.arange(n, device=cond_mask.device).view(n, 1) + past  # (n, 1)
    k = torch.arange(S, device=cond_mask.device).view(1, S)  # (1, S)
    allowed = (k <= q) & key_ok[:, None, :]  # (R, n, S)
    return (allowed | (k == q)).unsqueeze(1)  # (R, 1, n, S)


def attend(att: Attention, x: Tensor, rope: Tensor, past_k: Tensor | None, past_v: Tensor | None, mask: Tensor):
    """Attention.forward with the cache as tensors: -> (out (B, T, dim), keys, values (B, nkv, P + T, hd))."""
    B, T, _ = x.shape
    q, k, v = att.wqkv(x).split([att.n_head * att.hd, att.n_kv * att.hd, att.n_kv * att.hd], dim=-1)
    q = apply_rope(q.view(B, T, att.n_head, att.hd), rope).transpose(1, 2)  # (B, nh, T, hd)
    k = apply_rope(k.view(B, T, att.n_kv, att.hd), rope).transpose(1, 2)  # (B, nkv, T, hd)
    v = v.view(B, T, att.n_kv, att.hd).transpose(1, 2)  # (B, nkv, T, hd)
    if past_k is not None:
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)  # (B, nkv, P + T, hd)
    kk, vv = k, v
    if att.n_kv != att.n_head:
        kk = k.repeat_interleave(att.n_head // att.n_kv, dim=1)
        vv = v.repeat_interleave(att.n_head // att.n_kv, dim=1)
    y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)  # (B, nh, T, hd)
    return att.wo(y.transpose(1, 2).reshape(B, T, att.n_head * att.hd)), k, v


def run_blocks(
    layers: nn.ModuleList, h: Tensor, rope: Tensor, past: list[Tensor] | None, mask: Tensor
) -> tuple[Tensor, list[Tensor]]:
    """Block.forward over every layer -> (h (B, T, dim), [k0, v0, k1, v1, ...] each (B, nkv, P + T, hd))."""
    present = []
    for i, block in enumerate(layers):
        pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
        a, k, v = attend(block.attention, block.attention_norm(h), rope, pk, pv, mask)
        h = h + a
        h = h + block.feed_forward(block.ffn_norm(h))
        present += [k, v]
    return h, present


class Prefill(nn.Module):
    """condition rows (+ cond_mask (R, cls) bool) -> (logits (R, V) fp32 predicting image position 0, then
    each layer's keys and values (R, nkv, cls, hd) in the model dtype, k0, v0, k1, v1, ...)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.register_buffer("rope", rope_2d(gpt.cfg), persistent=False)  # fp32 whatever the model dtype

    def forward(self, cond: Tensor, cond_mask: Tensor) -> tuple[Tensor, ...]:
        gpt, cls = self.gpt, self.gpt.cfg.cls_token_num
        h = gpt.embed_condition(cond)  # (R, cls, dim)
        mask = allowed_keys(cond_mask, 0, cls, cls)
        h, present = run_blocks(gpt.layers, h, self.rope[:cls], None, mask)
        logits = gpt.output(gpt.norm(h[:, -1])).float()  # (R, V)
        return (logits, *present)


class Decode(nn.Module):
    """tokens (R, n) at the sequence positions right after a past of P keys, cond_mask (R, cls) bool, and
    each layer's past keys and values (R, nkv, P, hd) -> (logits (R, n, V) fp32, [:, j] predicting sequence
    position P + j + 1, then each layer's keys and values extended to P + n)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.register_buffer("rope", rope_2d(gpt.cfg), persistent=False)

    def forward(self, tokens: Tensor, cond_mask: Tensor, past: list[Tensor]) -> tuple[Tensor, ...]:
        gpt = self.gpt
        P, n = past[0].shape[2], tokens.shape[1]
        h = gpt.tok_embeddings(tokens)  # (R, n, dim)
        mask = allowed_keys(cond_mask, P, n, gpt.cfg.cls_token_num)
        h, present = run_blocks(gpt.layers, h, self.rope[P : P + n], past, mask)
        logits = gpt.output(gpt.norm(h)).float()  # (R, n, V)
        return (logits, *present)


def kv_names(n_layer: int, prefix: str) -> list[str]:
    """ONNX names of the cache tensors: prefix.0.key, prefix.0.value, prefix.1.key, ..."""
    return [f"{prefix}.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]


class VQEncode(nn.Module):
    """pixels (B, 3, H, W) in [-1, 1] -> codes (B, H/ds, W/ds) int64 (VQModel.encode without its checks)."""

    def __init__(self, vq: nn.Module) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, pixels: Tensor) -> Tensor:
        return self.vq.quantize.indices(self.vq.latent(pixels))


class VQDecode(nn.Module):
    """codes (B, h, w) int64 -> pixels (B, 3, h*ds, w*ds) fp32, unclamped (VQModel.decode without its checks)."""

    def __init__(self, vq: nn.Module) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, codes: Tensor) -> Tensor:
        dtype = self.vq.post_quant_conv.weight.dtype
        return self.vq.decode_latent(self.vq.quantize.lookup(codes).to(dtype)).float()
