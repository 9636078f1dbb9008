"""Tiny random models and the LlamaGen parity fixtures, shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import torch

from gptimg_core import GPT, GPTConfig, load_gpt, load_vq

PARITY = Path(__file__).parent / "fixtures" / "parity"


def parity_gpt(kind: str) -> GPT:
    """The LlamaGen-saved c2i/t2i fixture (dim 64, 2 layers, 4 heads, 4x4 grid)."""
    return load_gpt(PARITY / f"gpt_{kind}.pt", n_head=4, grid=4)


def parity_ref(name: str) -> dict:
    return torch.load(PARITY / f"{name}_ref.pt", weights_only=True)


def parity_vq():
    return load_vq(PARITY / "vq.pt")


def tiny_gpt(
    model_type: str = "c2i", *, seed: int = 0, n_kv_head: int | None = None, grid: int = 4, vocab: int = 64, **kw
) -> GPT:
    """A random GPT small enough to run hundreds of generations in a test."""
    torch.manual_seed(seed)
    extra = {"num_classes": 10, "cls_token_num": 1} if model_type == "c2i" else {"caption_dim": 16, "cls_token_num": 6}
    cfg = GPTConfig(
        dim=32, n_layer=2, n_head=4, n_kv_head=n_kv_head, vocab_size=vocab, block_size=grid * grid,
        model_type=model_type, **{**extra, **kw},
    )  # fmt: skip
    model = GPT(cfg).eval()
    with torch.no_grad():  # larger logits than the default init, so sampling is not near-uniform
        model.output.weight.mul_(8.0)
    return model


def caption(batch: int, valid: list[int], T: int = 6, C: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded random caption features (B, T, C) and their mask, `valid[i]` real tokens in row i."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch, T, C, generator=g)
    mask = torch.zeros(batch, T, dtype=torch.bool)
    for i, n in enumerate(valid):
        mask[i, T - n :] = True
    return feats * mask[..., None], mask
