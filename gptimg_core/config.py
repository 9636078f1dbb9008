"""Model configurations: the GPT and VQ hyper-parameters, and LlamaGen's named GPT presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


def find_multiple(n: int, k: int) -> int:
    """Smallest multiple of k that is >= n (LlamaGen's FFN width rule)."""
    return n if n % k == 0 else n + k - (n % k)


@dataclass(frozen=True)
class GPTConfig:
    """Llama-style image GPT, as LlamaGen defines it."""

    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # None: same as n_head (no grouped KV heads)
    ffn_hidden: int | None = None  # None: LlamaGen's rule find_multiple(int(8 * dim / 3), 256)
    vocab_size: int = 16384
    block_size: int = 256  # number of image tokens; the grid is square
    model_type: str = "c2i"  # "c2i" (class label) or "t2i" (T5 caption features)
    num_classes: int = 1000  # c2i only; row num_classes of the table is the null class
    caption_dim: int = 2048  # t2i only
    cls_token_num: int = 1  # condition tokens before the image tokens (120 for t2i)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.model_type not in ("c2i", "t2i"):
            raise ValueError(f"GPTConfig.model_type must be 'c2i' or 't2i', got {self.model_type!r}")
        if self.dim % self.n_head:
            raise ValueError(f"GPTConfig: dim {self.dim} is not divisible by n_head {self.n_head}")
        if self.head_dim % 4:
            raise ValueError(f"GPTConfig: head_dim {self.head_dim} must be a multiple of 4 for 2D RoPE")
        if self.n_head % self.kv_heads:
            raise ValueError(f"GPTConfig: n_head {self.n_head} is not a multiple of n_kv_head {self.kv_heads}")
        side = int(round(self.block_size**0.5))
        if side * side != self.block_size:
            raise ValueError(f"GPTConfig.block_size must be a square number of tokens, got {self.block_size}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        return self.ffn_hidden or find_multiple(int(2 * 4 * self.dim / 3), 256)

    @property
    def grid(self) -> int:
        """Side of the square token grid."""
        return int(round(self.block_size**0.5))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GPTConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# LlamaGen's presets: name -> (dim, n_layer, n_head).
GPT_PRESETS: dict[str, tuple[int, int, int]] = {
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1280, 36, 20),
    "XXL": (1536, 48, 24),
    "XXXL": (2560, 48, 40),
    "1B": (2048, 22, 32),
    "3B": (3200, 24, 32),
    "7B": (4096, 32, 32),
}


def preset_heads(dim: int, n_layer: int) -> int | None:
    """Number of heads of the LlamaGen preset with this width and depth, if any."""
    for d, n, h in GPT_PRESETS.values():
        if (d, n) == (dim, n_layer):
            return h
    return None


@dataclass(frozen=True)
class VQConfig:
    """LlamaGen VQ tokenizer (taming-style encoder/decoder, l2-normalised codebook)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    decoder_ch_mult: tuple[int, ...] | None = None  # None: same as ch_mult
    enc_res_blocks: int = 2
    dec_res_blocks: int = 3  # LlamaGen's decoder has num_res_blocks + 1 per level
    z_channels: int = 256
    codebook_size: int = 16384
    embed_dim: int = 8
    in_channels: int = 3
    norm_groups: int = 32
    image_size: int = 256  # default image size; any multiple of `downsample` works

    @property
    def dec_mult(self) -> tuple[int, ...]:
        return tuple(self.decoder_ch_mult or self.ch_mult)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VQConfig:
        data = json.loads(text)
        for key in ("ch_mult", "decoder_ch_mult"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["GPTConfig", "VQConfig", "GPT_PRESETS", "preset_heads", "find_multiple"]
