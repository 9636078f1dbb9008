"""LlamaGen's VQ tokenizer (VQ-8 / VQ-16 layout, any width): pixels <-> codes.

Parameter names match LlamaGen's `tokenizer/tokenizer_image/vq_model.py` so its checkpoints load
strictly. Pixels are (B, 3, H, W) in [-1, 1]; codes are (B, h, w) with h = H / downsample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_finite
from .config import VQConfig

# pixels a little outside [-1, 1] from resampling or float rounding are fine; 0..255 or 0..1-offset are not
RANGE_SLACK = 1e-3


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, ch, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over pixels with 1x1 convolutions."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(ch, groups)
        self.q, self.k, self.v = nn.Conv2d(ch, ch, 1), nn.Conv2d(ch, ch, 1), nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(B, 1, C, H * W).transpose(2, 3)  # (B, 1, HW, C)
        k = self.k(h).reshape(B, 1, C, H * W).transpose(2, 3)
        v = self.v(h).reshape(B, 1, C, H * W).transpose(2, 3)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        return x + self.proj_out(y.transpose(2, 3).reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric pad, as LlamaGen/taming


class Upsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x.float(), scale_factor=2.0, mode="nearest").to(x.dtype))


class Level(nn.Module):
    """One resolution level: residual blocks, attention blocks (lowest level only), resampling."""

    def __init__(self, cin: int, cout: int, n_res: int, attn: bool, resample: nn.Module | None, groups: int):
        super().__init__()
        self.res = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout, groups) for i in range(n_res))
        self.attn = nn.ModuleList(AttnBlock(cout, groups) for _ in range(n_res if attn else 0))
        if isinstance(resample, Downsample):
            self.downsample = resample
        elif isinstance(resample, Upsample):
            self.upsample = resample

    def forward(self, x: Tensor) -> Tensor:
        for i, res in enumerate(self.res):
            x = res(x)
            if len(self.attn):
                x = self.attn[i](x)
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        if hasattr(self, "upsample"):
            x = self.upsample(x)
        return x


def _mid(ch: int, groups: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(ch, ch, groups), AttnBlock(ch, groups), ResnetBlock(ch, ch, groups)])


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        n = len(widths)
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        cins = [cfg.ch] + widths[:-1]
        self.conv_blocks = nn.ModuleList(
            Level(cins[i], widths[i], cfg.enc_res_blocks, i == n - 1, Downsample(widths[i]) if i < n - 1 else None, g)
            for i in range(n)
        )
        self.mid = _mid(widths[-1], g)
        self.norm_out = _norm(widths[-1], g)
        self.conv_out = nn.Conv2d(widths[-1], cfg.z_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.dec_mult]
        n = len(widths)
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[-1], 3, 1, 1)
        self.mid = _mid(widths[-1], g)
        levels = []
        cin = widths[-1]
        for j, i in enumerate(reversed(range(n))):  # conv_blocks[0] is the lowest resolution
            levels.append(Level(cin, widths[i], cfg.dec_res_blocks, j == 0, Upsample(widths[i]) if i > 0 else None, g))
            cin = widths[i]
        self.conv_blocks = nn.ModuleList(levels)
        self.norm_out = _norm(widths[0], g)
        self.conv_out = nn.Conv2d(widths[0], cfg.in_channels, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantizer(nn.Module):
    """Nearest codebook entry under l2-normalised latents and codes (LlamaGen's lookup)."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.embed_dim)

    def codebook(self) -> Tensor:
        return F.normalize(self.embedding.weight.float(), dim=-1)  # (K, e), fp32 whatever the model dtype

    def indices(self, z: Tensor) -> Tensor:
        """z (B, e, h, w) -> codes (B, h, w)."""
        B, e, h, w = z.shape
        zf = F.normalize(z.float().permute(0, 2, 3, 1).reshape(-1, e), dim=-1)  # (Bhw, e) in fp32, as the codebook
        book = self.codebook()
        dist = zf.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * zf @ book.T  # (Bhw, K)
        return dist.argmin(1).view(B, h, w)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, h, w) -> quantised latent (B, e, h, w)."""
        return self.codebook()[codes].permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    """Encoder, quantizer and decoder with LlamaGen's names; `encode`/`decode` are the public API."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Quantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    @property
    def downsample(self) -> int:
        return self.cfg.downsample

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def latent(self, pixels: Tensor) -> Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> continuous latent (B, e, h, w), before quantisation."""
        if pixels.is_cpu:  # as in decode_latent
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.quant_conv(self.encoder(pixels)).contiguous()

    def compute_in(self, dtype: torch.dtype) -> VQModel:
        """Run the encoder and decoder in `dtype` (in place; returns self); the codebook stays as stored, so codes
        are still picked and looked up in fp32."""
        for name, part in self.named_children():
            if name != "quantize":
                part.to(dtype)
        return self

    def decode_latent(self, quant: Tensor) -> Tensor:
        """Quantised latent (B, e, h, w) -> pixels (B, 3, H, W), unclamped."""
        if quant.is_cpu:  # oneDNN's CPU convs run faster on channels-last activations (README, VQ decode)
            quant = quant.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.post_quant_conv(quant)).contiguous()

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """Pixels (B, 3, H, W) float in [-1, 1] -> codes LongTensor (B, H/ds, W/ds).

        Values outside [-1, 1] (beyond float rounding) are an error, not clamped: a 0..255 image is the
        commonest mistake. A float image in 0..1 (ComfyUI's IMAGE) cannot be told apart from a bright one
        in [-1, 1], so it is not guessed at: convert it at the boundary (x * 2 - 1)."""
        _check_pixels(pixels, self.downsample, self.cfg.in_channels)
        w = self.quant_conv.weight
        x = pixels.to(w.device, w.dtype)
        return torch.cat([self.quantize.indices(self.latent(c)) for c in x.split(_chunk(x.shape[-2:], x.device))])

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, h, w) -> pixels (B, 3, h*ds, w*ds) float32, unclamped (as LlamaGen)."""
        _check_codes(codes, self.codebook_size)
        w = self.post_quant_conv.weight
        codes = codes.to(w.device)
        side = (codes.shape[1] * self.downsample, codes.shape[2] * self.downsample)
        parts = [self.decode_latent(self.quantize.lookup(c).to(w.dtype)) for c in codes.split(_chunk(side, w.device))]
        return torch.cat(parts).float()


# On CPU a large batch runs slower per image than a few images at a time: once the activations outgrow
# the caches, every conv and GroupNorm streams them through memory (timings: MODEL_CARD.md, Speed). Results
# match a whole batch's up to float rounding (oneDNN picks its conv algorithm by batch size). GPUs want big
# batches.
CPU_CHUNK_PIXELS = 8 * 64 * 64


def _chunk(side: tuple[int, int], device: torch.device) -> int:
    """Images per encode/decode call: on CPU as many as fit CPU_CHUNK_PIXELS (at least one), else all."""
    if device.type != "cpu":
        return 1 << 30
    return max(1, CPU_CHUNK_PIXELS // (side[0] * side[1]))


def _check_pixels(pixels: Tensor, ds: int, channels: int) -> None:
    where = "VQModel.encode"
    if not isinstance(pixels, Tensor) or pixels.dim() != 4 or pixels.shape[1] != channels:
        got = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__
        raise ValueError(
            f"{where}: pixels must be a (B, {channels}, H, W) float tensor in [-1, 1], got {got}; "
            f"an image (B, H, W, {channels}) needs .permute(0, 3, 1, 2) (images.from_uint8 does it for uint8)"
        )
    if not pixels.is_floating_point():
        raise TypeError(
            f"{where}: pixels must be a float tensor in [-1, 1], got {pixels.dtype}; "
            f"convert a 0..255 image with images.from_uint8, or x.float() / 127.5 - 1"
        )
    B, _, H, W = pixels.shape
    if B == 0 or H == 0 or W == 0:
        raise ValueError(f"{where}: pixels is empty (shape {tuple(pixels.shape)}); give at least one {ds}x{ds} image")
    if H % ds or W % ds:
        raise ValueError(
            f"{where}: image size {W}x{H} is not a multiple of the tokenizer's downsample {ds}; "
            f"resize or crop it to {W - W % ds}x{H - H % ds}"
        )
    check_finite(where, "pixels", pixels)
    lo, hi = float(pixels.min()), float(pixels.max())
    if lo < -1.0 - RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        hint = (
            "a 0..255 image: x / 127.5 - 1 (or images.from_uint8 on the uint8 array)"
            if hi > 2.0 and lo >= 0.0
            else "rescale it to [-1, 1]"
        )
        raise ValueError(f"{where}: pixels must lie in [-1, 1], got values in [{lo:g}, {hi:g}]; for {hint}")


def _check_codes(codes: Tensor, size: int) -> None:
    if not isinstance(codes, Tensor) or codes.dim() != 3 or codes.is_floating_point() or codes.dtype == torch.bool:
        got = (tuple(codes.shape), codes.dtype) if isinstance(codes, Tensor) else type(codes).__name__
        raise ValueError(f"VQModel.decode: codes must be an integer tensor (B, h, w), got {got}")
    if codes.numel() == 0:
        raise ValueError(f"VQModel.decode: codes is empty (shape {tuple(codes.shape)})")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= size):
        raise ValueError(
            f"VQModel.decode: codes must lie in [0, {size}) for this tokenizer, got [{int(codes.min())}, "
            f"{int(codes.max())}]; were they made by another VQ?"
        )
