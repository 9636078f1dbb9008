"""Lower-precision GPT weights for CPU decoding: bf16, and weight-only int8 with per-output-channel scales.

A decode step on CPU is bound by reading the weights (README, Performance), so fewer bytes per weight is
fewer milliseconds. int8 keeps each matrix as int8 rows times a bf16 scale per output channel and runs with
bf16 activations: PyTorch's CPU kernel for int8 weights (`torch._weight_int8pack_mm`) is fast for bf16
activations and took 30x longer than the fp32 product for fp32 ones (docs/performance.md).
Quantize after loading: checkpoints keep LlamaGen's fp32 keys.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from .cpu_linear import Linear, read_cpuinfo

log = logging.getLogger(__name__)

# The CPU kernel gives wrong results (or crashes) unless the inner dimension is a multiple of 16 (torch 2.13).
INT8_K_MULTIPLE = 16


class Int8Linear(nn.Module):
    """A bias-free linear layer with int8 weights (out, in) and bf16 scales (out,): y = (x @ q.T) * scales."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        w = weight.detach().float()
        scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,): the largest weight of a row maps to 127
        self.register_buffer("weight", (w / scales[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features).to(self.scales.dtype).contiguous()  # (rows, in) bf16
        return torch._weight_int8pack_mm(flat, self.weight, self.scales).view(*x.shape[:-1], self.out_features)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Put a model in bf16 and replace each of its cpu_linear.Linear layers by an Int8Linear, in place; returns it."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, Linear)]
    bad = [f"{name} ({m.in_features})" for name, m in layers if m.in_features % INT8_K_MULTIPLE]
    if bad:
        raise ValueError(
            f"quantize_int8: int8 weights need input widths that are multiples of {INT8_K_MULTIPLE}, got {bad[:3]}; "
            f"load this model in bf16 or fp32"
        )
    model.to(torch.bfloat16)
    for name, m in layers:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(m.weight).to(m.weight.device))
    log.info("quantize_int8: %d matrices in int8 with per-channel scales, activations in bf16", len(layers))
    return model


def is_int8(model: nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in model.modules())


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    lines = (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines()
    flags = next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags
