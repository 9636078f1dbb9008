"""bf16 autocast for CPU training, only where the CPU multiplies bf16 natively (oneDNN's check):
emulated bf16 would be slower than fp32. Master weights, optimiser state and losses stay fp32."""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """True if this CPU has native bf16 matmuls and convolutions (e.g. avx512_bf16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_autocast(bf16: bool) -> torch.autocast:
    """bf16 autocast on the CPU when asked for and native here; otherwise a no-op context (fp32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(bf16) and native_bf16())
