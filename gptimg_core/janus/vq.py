"""Janus' VQ-16 tokenizer with our VQModel's surface, over transformers' JanusVQVAE.

Pixels are (B, 3, H, W) in [-1, 1]; codes (B, h, w). decode() is JanusVQVAE.decode (what
`decode_image_tokens` runs) for any grid size; encode() picks the nearest codebook entry after l2-normalising
both, as Janus' original VQ (LlamaGen's VQ-16 with codebook_l2_norm) does: transformers' JanusVQVAE.encode
compares unnormalised vectors, while its decode normalises the codebook, so its codes do not round-trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..vq import _check_codes, _check_pixels


class JanusVQ(nn.Module):
    """transformers' JanusVQVAE as a VQModel (encode, decode, downsample, codebook_size)."""

    def __init__(self, vqvae: nn.Module) -> None:
        super().__init__()
        self.vqvae = vqvae.eval()

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vqvae.config.channel_multiplier) - 1)

    @property
    def codebook_size(self) -> int:
        return int(self.vqvae.config.num_embeddings)

    @property
    def embed_dim(self) -> int:
        return int(self.vqvae.config.embed_dim)

    @property
    def quantize(self) -> nn.Module:
        """The codebook module (`.embedding`), where the nodes' VQ id and preview colours look."""
        return self.vqvae.quantize

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> codes LongTensor (B, H/16, W/16)."""
        _check_pixels(pixels, self.downsample, 3)
        w = self.vqvae.quant_conv.weight
        z = self.vqvae.quant_conv(self.vqvae.encoder(pixels.to(w.device, w.dtype)))  # (B, e, h, w)
        B, e, h, wd = z.shape
        zf = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, e).float(), dim=-1)  # (Bhw, e)
        book = F.normalize(self.vqvae.quantize.embedding.weight.float(), dim=-1)  # (K, e)
        return (zf @ book.T).argmax(1).view(B, h, wd)  # max cosine = min distance between unit vectors

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, h, w) -> pixels (B, 3, 16h, 16w) float32, unclamped; JanusVQVAE.decode's arithmetic."""
        _check_codes(codes, self.codebook_size)
        q = self.vqvae.quantize
        codes = codes.to(q.embedding.weight.device)
        entry = F.normalize(q.embedding(codes), p=2, dim=-1).permute(0, 3, 1, 2).contiguous()  # (B, e, h, w)
        return self.vqvae.decoder(self.vqvae.post_quant_conv(entry)).float()
