"""The Llama-style image GPT of LlamaGen: RMSNorm, SwiGLU, 2D RoPE, grouped KV heads, KV cache.

Parameter names match LlamaGen's `autoregressive/models/gpt.py`, so its checkpoints load strictly.
The model holds no generation state: a `KVCache` is made per generation and passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import compiled, cuda_graphs
from .config import GPTConfig
from .cpu_linear import Linear
from .settings import LLAMAGEN, Recommended
from .token_model import Condition


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()  # normalise in fp32 whatever the model dtype
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_2d(cfg: GPTConfig) -> Tensor:
    """(cls_token_num + grid**2, head_dim // 2, 2) cos/sin table; condition rows are all zero.

    The first head_dim/4 pairs rotate by the token's row, the next head_dim/4 by its column.
    """
    grid = cfg.grid
    n = cfg.head_dim // 4
    freqs = 1.0 / (cfg.rope_base ** (torch.arange(n, dtype=torch.float32) * 2 / (cfg.head_dim // 2)))
    angles = torch.outer(torch.arange(grid, dtype=torch.float32), freqs)  # (grid, n)
    rows = angles[:, None, :].expand(grid, grid, n)
    cols = angles[None, :, :].expand(grid, grid, n)
    grid_angles = torch.cat([rows, cols], dim=-1).reshape(grid * grid, 2 * n)  # (grid*grid, head_dim/2)
    table = torch.stack([grid_angles.cos(), grid_angles.sin()], dim=-1)  # (grid*grid, head_dim/2, 2)
    cond = torch.zeros(cfg.cls_token_num, 2 * n, 2)
    return torch.cat([cond, table])


def apply_rope(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate interleaved pairs (x[2j], x[2j+1]). x (B, T, H, D), rope (T, D/2, 2) or per row (B, T, D/2, 2),
    computed in fp32.

    Pair j becomes (x0 cos - x1 sin, x1 cos + x0 sin), each product rounded as in LlamaGen's stacked formula.
    """
    xs = x.float().reshape(*x.shape[:-1], -1, 2)  # (B, T, H, D/2, 2)
    r = rope.unsqueeze(-3)  # (T, 1, D/2, 2) or (B, T, 1, D/2, 2): one rotation for every head
    sin = torch.cat([-r[..., 1:], r[..., 1:]], dim=-1)  # r's shape, (-sin, sin): no host tensor to copy
    out = xs * r[..., :1] + xs.flip(-1) * sin
    return out.flatten(3).type_as(x)


class KVCache:
    """Preallocated keys and values of every layer: (B, kv_heads, max_len, head_dim) each, zeroed: passes that
    attend over the whole cache (GPT.step) mask keys not yet written, and a masked key must still be finite."""

    def __init__(
        self,
        cfg: GPTConfig,
        batch: int,
        max_len: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ):
        shape = (batch, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.batch, self.max_len = batch, max_len

    def keep(self, rows: slice) -> None:
        """Drop batch rows no longer needed (e.g. the null half once CFG stops); views, no copy."""
        self.k = [k[rows] for k in self.k]
        self.v = [v[rows] for v in self.v]
        self.batch = self.k[0].shape[0]


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


def fixed_mask(key_ok: Tensor | None, pos: Tensor, S: int) -> Tensor:
    """attention_mask's rule for n new tokens at positions pos (B, n) (a device tensor) over a whole cache of S
    keys: bool (B, 1, n, S), made on the device so that a captured pass serves every position."""
    k = torch.arange(S, device=pos.device)
    q = pos[:, None, :, None]  # (B, 1, n, 1)
    if key_ok is None:
        return k <= q
    return ((k <= q) & key_ok[..., :S]) | (k == q)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.wqkv = Linear(cfg.dim, (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_dim)
        self.wo = Linear(cfg.dim, cfg.dim)

    def forward(
        self,
        x: Tensor,
        rope: Tensor,
        at: int | Tensor,
        k_cache: Tensor | None,
        v_cache: Tensor | None,
        mask: Tensor | None,
    ) -> Tensor:
        """at: the first new token's position; or, for a fixed-size pass (GPT.step), a tensor (B * nkv * T,) of
        where each new key goes in the cache flattened to (B * nkv * max_len, hd): such a pass writes those rows
        and attends over the whole cache under an explicit mask."""
        B, T, _ = x.shape
        nh, nkv, hd = self.n_head, self.n_kv, self.hd
        qkv = self.wqkv(x)  # (B, T, (nh + 2 nkv) hd)
        qk = apply_rope(qkv[..., : (nh + nkv) * hd].view(B, T, nh + nkv, hd), rope)  # q and k in one rotation
        q, k = qk[:, :, :nh].transpose(1, 2), qk[:, :, nh:].transpose(1, 2)  # (B, nh, T, hd), (B, nkv, T, hd)
        v = qkv[..., (nh + nkv) * hd :].view(B, T, nkv, hd).transpose(1, 2)  # (B, nkv, T, hd)
        if isinstance(at, Tensor):
            k_cache.view(-1, hd).index_copy_(0, at, k.reshape(-1, hd))  # each batch row at its own positions
            v_cache.view(-1, hd).index_copy_(0, at, v.reshape(-1, hd))
            k, v = k_cache, v_cache  # (B, nkv, max_len, hd)
        elif k_cache is not None:
            k_cache[:, :, at : at + T] = k
            v_cache[:, :, at : at + T] = v
            k, v = k_cache[:, :, : at + T], v_cache[:, :, : at + T]  # (B, nkv, S, hd) views
        if self.n_kv != self.n_head:  # each kv head serves n_head / n_kv query heads in a row
            S, rep = k.shape[2], self.n_head // self.n_kv
            k = k[:, :, None].expand(B, nkv, rep, S, hd).reshape(B, nh, S, hd)
            v = v[:, :, None].expand(B, nkv, rep, S, hd).reshape(B, nh, S, hd)
        # mask None: plain causal over the new rows (a single decode row sees every cached key).
        causal = mask is None and T > 1
        if causal and k.shape[2] != T:
            raise ValueError("Attention: a multi-token step after a prefix needs an explicit mask")
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # (B, nh, T, hd)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_head * self.hd))


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.w1 = Linear(cfg.dim, cfg.hidden)
        self.w3 = Linear(cfg.dim, cfg.hidden)
        self.w2 = Linear(cfg.hidden, cfg.dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(
        self, x: Tensor, rope: Tensor, at: int | Tensor, kc: Tensor | None, vc: Tensor | None, mask: Tensor | None
    ) -> Tensor:
        h = x + self.attention(self.attention_norm(x), rope, at, kc, vc, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class LabelEmbedder(nn.Module):
    """Class ids -> one condition token; row num_classes is the null class."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: Tensor) -> Tensor:
        return self.embedding_table(labels).unsqueeze(1)  # (B, 1, dim)


class CaptionMLP(nn.Module):
    def __init__(self, caption_dim: int, dim: int) -> None:
        super().__init__()
        self.fc1 = Linear(caption_dim, dim)
        self.fc2 = Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    """T5 features (B, T, caption_dim) -> condition tokens (B, T, dim); stores the null caption."""

    def __init__(self, caption_dim: int, dim: int, token_num: int) -> None:
        super().__init__()
        self.cap_proj = CaptionMLP(caption_dim, dim)
        self.register_buffer("uncond_embedding", torch.randn(token_num, caption_dim) / caption_dim**0.5)

    def forward(self, caption: Tensor) -> Tensor:
        return self.cap_proj(caption)


class GPT(nn.Module):
    """LlamaGen GPT. Sequence: cls_token_num condition tokens, then image tokens in raster order."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.model_type == "c2i":
            self.cls_embedding: nn.Module = LabelEmbedder(cfg.num_classes, cfg.dim)
        else:
            self.cls_embedding = CaptionEmbedder(cfg.caption_dim, cfg.dim, cfg.cls_token_num)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = Linear(cfg.dim, cfg.vocab_size)
        self._rope: dict[torch.device, Tensor] = {}  # fp32 per device, never cast with the model
        self.compile_steps = False  # compiled.enable() turns on torch.compile of the decode passes on CPU
        # Short passes replayed from CUDA graphs (cuda_graphs.py): None on CUDA alone, True on every device (on
        # others the same fixed-size passes run uncaptured), False never.
        self.cuda_graphs: bool | None = None
        self.recommended: Recommended = LLAMAGEN[cfg.model_type]  # the loader sets the built-in model's own

    def rope_table(self) -> Tensor:
        device = self.tok_embeddings.weight.device
        if device not in self._rope:
            with torch.inference_mode(False):  # a table made while decoding must still serve training's autograd
                self._rope[device] = rope_2d(self.cfg).to(device)
        return self._rope[device]

    # The TokenModel interface (token_model.py) that the decoders speak.
    @property
    def kind(self) -> str:
        return self.cfg.model_type

    @property
    def grid(self) -> int:
        return self.cfg.grid

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.weight.device

    def condition(
        self,
        cond: Tensor,
        cond_mask: Tensor | None,
        uncond: Tensor | None,
        uncond_mask: Tensor | None,
        *,
        guided: bool,
        where: str,
    ) -> Condition:
        from .conditioning import prepare_condition  # it checks against this class

        return prepare_condition(self, cond, cond_mask, uncond, uncond_mask, guided=guided, where=where)

    def start(self, cond: Condition) -> GPTState:
        return GPTState(self, cond)

    @property
    def num_classes(self) -> int:
        """Classes a c2i model takes (ids 0..num_classes-1)."""
        return self.cfg.num_classes

    def describe(self) -> str:
        """One line on what this model is: size, condition, grid, vocabulary, dtype."""
        c = self.cfg
        params = sum(p.numel() for p in self.parameters())
        if c.model_type == "c2i":
            kind = f"class-to-image (c2i), {c.num_classes} classes"
        else:
            kind = f"text-to-image (t2i), {c.cls_token_num} text tokens of {c.caption_dim} dims"
        dtype = str(self.tok_embeddings.weight.dtype).removeprefix("torch.")
        steps = "; decode steps compiled on CPU" if self.compile_steps else ""
        return (
            f"{params / 1e6:.1f}M parameters, {kind}; {c.grid}x{c.grid} token grid, vocabulary {c.vocab_size}; {dtype}"
            f"{steps}"
        )

    def sampling_bytes(self, rows: int) -> int:
        from .memory import sampling_bytes  # the estimate reads this class's config

        return sampling_bytes(self, rows, 1, guided=False)

    @property
    def null_condition(self) -> Tensor:
        """The stored null condition: class id num_classes (c2i) or uncond_embedding (t2i)."""
        if self.cfg.model_type == "c2i":
            return torch.tensor(self.cfg.num_classes, device=self.tok_embeddings.weight.device)
        return self.cls_embedding.uncond_embedding

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        w = self.tok_embeddings.weight
        return KVCache(self.cfg, batch, max_len or self.seq_len, device=w.device, dtype=w.dtype)

    @property
    def seq_len(self) -> int:
        return self.cfg.cls_token_num + self.cfg.block_size

    @property
    def cache_len(self) -> int:
        """Positions a decode state's cache holds: seq_len, and room for padding where fixed-size passes run."""
        return cuda_graphs.cache_len(self.seq_len) if cuda_graphs.wanted(self) else self.seq_len

    def embed_condition(self, cond: Tensor) -> Tensor:
        """Class ids (B,) or caption features (B, T, caption_dim) -> (B, cls_token_num, dim)."""
        if self.cfg.model_type == "t2i":
            cond = cond.to(self.tok_embeddings.weight.dtype)
        return self.cls_embedding(cond)[:, : self.cfg.cls_token_num]

    def forward(
        self,
        tokens: Tensor | None,
        start: int,
        *,
        cond: Tensor | None = None,
        cache: KVCache | None = None,
        mask: Tensor | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Logits (B, T, vocab) in fp32 for the rows at sequence positions start..start+T-1.

        tokens: image tokens (B, T) or None; cond: condition (placed first, so start must be 0).
        mask: bool (B or 1, 1, T, S) of allowed keys, S = start + T; None means causal.
        The logit at position t predicts the token at position t + 1.
        """
        parts = []
        if cond is not None:
            if start != 0:
                raise ValueError("GPT.forward: a condition can only be given at start 0")
            parts.append(self.embed_condition(cond))
        if tokens is not None:
            parts.append(self.tok_embeddings(tokens))
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (B, T, dim)
        T = h.shape[1]
        table = self.rope_table()
        if start + T > table.shape[0]:
            raise ValueError(f"GPT.forward: positions up to {start + T} exceed the model's {table.shape[0]}")
        rope = table[start : start + T]
        for i, layer in enumerate(self.layers):
            kc = cache.k[i] if cache is not None else None
            vc = cache.v[i] if cache is not None else None
            h = layer(h, rope, start, kc, vc, mask)
        if last_only:
            h = h[:, -1:]
        return self.output(self.norm(h)).float()

    def step(self, tokens: Tensor, start: Tensor, cache: KVCache, key_ok: Tensor | None, pick: Tensor | None) -> Tensor:
        """forward with every size fixed and every position a tensor, so one captured CUDA graph serves each
        position (cuda_graphs.py), and each batch row may sit at its own positions: image tokens (B, T) at
        sequence positions start[b].., start (B,), attending over the whole (zeroed) cache; key_ok (B, 1, 1,
        cache.max_len) or None. -> fp32 logits (B, T, V), or (B, 1, V) of the token at index pick (1,)."""
        B, T, S = tokens.shape[0], tokens.shape[1], cache.max_len
        pos = start[:, None] + torch.arange(T, device=start.device)  # (B, T)
        h = self.tok_embeddings(tokens)  # (B, T, dim)
        table = self.rope_table()
        at = pos.flatten().clamp(max=table.shape[0] - 1)  # padding tokens past the end: any angle
        rope = table.index_select(0, at).view(B, T, *table.shape[1:])  # (B, T, D/2, 2)
        mask = fixed_mask(key_ok, pos, S)
        heads = torch.arange(B * self.cfg.kv_heads, device=pos.device).view(B, -1, 1)  # (B, nkv, 1)
        rows = (heads * S + pos[:, None, :]).flatten()  # (B * nkv * T,) in the flattened cache
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, rows, cache.k[i], cache.v[i], mask)
        if pick is not None:
            h = h.index_select(1, pick)
        return self.output(self.norm(h)).float()


class GPTState:
    """A decode state of the GPT (token_model.DecodeState): condition rows first, then image tokens, on a KVCache."""

    per_row_positions = True  # feed takes each row's own t (GPT.step's form)

    def __init__(self, gpt: GPT, cond: Condition) -> None:
        self.gpt, self.cond = gpt, cond
        # the passes after the prefill: compiled where the model asks for it (compiled.py; CPU only)
        self.forward = compiled.decode_step(gpt) if gpt.compile_steps and gpt.device.type == "cpu" else gpt
        self.rows = cond.rows.shape[0]
        self.cache = gpt.new_cache(self.rows, gpt.cache_len)
        # short passes of fixed size, replayed from CUDA graphs on CUDA
        wanted = cuda_graphs.wanted(gpt)
        self.graphs = cuda_graphs.GraphedPasses(self, capture=gpt.device.type == "cuda") if wanted else None
        self.T = gpt.cfg.cls_token_num
        self.key_ok = None  # (R, 1, 1, max_len): padding of the condition is never attended to
        if cond.mask is not None:
            image = torch.ones(self.rows, self.cache.max_len - self.T, dtype=torch.bool, device=cond.mask.device)
            self.key_ok = torch.cat([cond.mask, image], dim=1).view(self.rows, 1, 1, -1)

    def prefill(self) -> Tensor:
        mask = attention_mask(self.key_ok, 0, self.T)
        return self.gpt(None, 0, cond=self.cond.rows, cache=self.cache, mask=mask, last_only=True)[:, -1]

    def feed(self, tokens: Tensor, t: int | Tensor, *, last_only: bool = False) -> Tensor:
        start = self.T + t  # an int, or each row's (R,)
        n = tokens.shape[1]
        if isinstance(start, Tensor) and start.shape != (tokens.shape[0],):
            raise ValueError(
                f"GPTState.feed: t must be an int or one start per row, shape ({tokens.shape[0]},); "
                f"got shape {tuple(start.shape)}"
            )
        if self.graphs is not None and self.graphs.serves(n):
            return self.graphs(tokens, start, last_only)
        if isinstance(start, Tensor):
            pick = torch.tensor([n - 1], device=start.device) if last_only else None
            return self.gpt.step(tokens, start, self.cache, self.key_ok, pick)
        mask = attention_mask(self.key_ok, start, n)
        return self.forward(tokens, start, cache=self.cache, mask=mask, last_only=last_only)

    def keep_rows(self, n: int) -> None:
        self.cache.keep(slice(0, n))  # views, no copy
        self.key_ok = self.key_ok[:n] if self.key_ok is not None else None
        self.rows = n
