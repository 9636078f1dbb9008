"""What a sampling run will allocate, known before it starts, and a check that it fits the device.

The KV cache dominates and is fixed up front: every layer keeps keys and values for every row of the
batch over the whole sequence. A request that cannot fit fails at once with the number, instead of
swapping or being killed half way through.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .gpt import GPT
    from .token_model import TokenModel

# Set to 0 to skip the check (e.g. when the OS reports less free memory than a cache would give back).
ENV_SWITCH = "GPTIMG_MEMORY_CHECK"


class MemoryLimitError(ValueError):
    """A sampling request whose estimated memory exceeds what the device has available."""


def kv_cache_bytes(gpt: GPT, rows: int) -> int:
    """Bytes of the KV cache for `rows` sequences: layers x 2 (k, v) x rows x kv_heads x cache_len x head_dim
    x bytes per element of the model's dtype."""
    cfg = gpt.cfg
    item = gpt.tok_embeddings.weight.element_size()
    return cfg.n_layer * 2 * rows * cfg.kv_heads * gpt.cache_len * cfg.head_dim * item


def sampling_bytes(gpt: GPT, batch: int, candidates: int = 1, *, guided: bool = True) -> int:
    """Estimated peak bytes of one sampling run of `batch` images x `candidates` draws each.

    rows = batch x candidates (x 2 with classifier-free guidance: a [cond; null] pair per draw). The sum of
    - the KV cache (kv_cache_bytes), allocated once for the whole run;
    - the prefill of the cls_token_num condition rows: activations rows x T x (4 dim + 3 ffn) and the
      attention scores rows x heads x T x T (fp32);
    - one decode step's transients: fp32 logits and their softmax/noise/filter copies, rows x vocab x 4 x 4,
      and, with grouped KV heads, one layer's keys and values widened to every head.
    A lower bound in the spirit of the check: it refuses requests that cannot fit, not ones that might not.
    """
    cfg = gpt.cfg
    item = gpt.tok_embeddings.weight.element_size()
    rows = batch * candidates * (2 if guided else 1)
    T = cfg.cls_token_num
    prefill = rows * T * (4 * cfg.dim + 3 * cfg.hidden) * item + rows * cfg.n_head * T * T * 4
    step = rows * cfg.vocab_size * 4 * 4
    if cfg.kv_heads != cfg.n_head:
        step += 2 * rows * cfg.n_head * gpt.cache_len * cfg.head_dim * item
    return kv_cache_bytes(gpt, rows) + prefill + step


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on `device`: CUDA's free memory; on CPU psutil's `available` if psutil is
    installed, else Linux's MemAvailable, else physical pages (os.sysconf). None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        import psutil  # optional: not a dependency

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def check_memory(model: TokenModel, batch: int, candidates: int, *, guided: bool, where: str) -> None:
    """Raise MemoryLimitError naming `where`, the estimate (the model's sampling_bytes) and the limit when a
    run cannot fit. Skipped when the environment variable GPTIMG_MEMORY_CHECK is 0."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return
    rows = batch * candidates * (2 if guided else 1)
    need = model.sampling_bytes(rows)
    free = available_bytes(model.device)
    if free is not None and need > free:
        g = model.grid
        raise MemoryLimitError(
            f"{where}: {batch} image(s) x {candidates} candidate(s) on a {g}x{g} grid "
            f"({rows} sequences{' with CFG' if guided else ''}) need about {_gib(need)}, but {model.device} has "
            f"{_gib(free)} available. Lower the batch or the candidates, or set {ENV_SWITCH}=0 to skip this check"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


__all__ = ["ENV_SWITCH", "MemoryLimitError", "available_bytes", "check_memory", "kv_cache_bytes", "sampling_bytes"]
