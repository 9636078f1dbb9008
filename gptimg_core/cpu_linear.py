"""The GPT's weight products on CPU: `project` (x @ W.T) picks, by row count and CPU vendor, the BLAS path that
reads the weights fastest, since a decode step multiplies a few rows by every weight matrix and is bound by
reading them. `Linear` is nn.Linear through it (same parameters, so checkpoints load unchanged).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Rows (batch x 2 with CFG) that use W @ x.T, by vendor (tables in docs/performance.md, README Performance):
STREAM_ROWS_BY_VENDOR = {"AuthenticAMD": range(1, 5), "GenuineIntel": range(8, 17)}
# Rows that use oneDNN's linear on the dense weight (no prepacked copy), by vendor; elsewhere F.linear (MKL).
ONEDNN_ROWS_BY_VENDOR = {"AuthenticAMD": range(5, 1 << 20)}
ONEDNN_MIN_WEIGHT = 1 << 17  # elements: below this oneDNN's fixed cost per call outweighs its faster read


def read_cpuinfo() -> str:
    """The start of /proc/cpuinfo (the first CPU's lines); "" where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read(1 << 16)
    except OSError:
        return ""


def cpu_vendor(cpuinfo: str | None = None) -> str:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD", ...) from /proc/cpuinfo; "" where unknown."""
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return ""


def _has_onednn_linear() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


# Row counts for which project() uses W @ x.T, and oneDNN, on this machine (elsewhere: F.linear, as LlamaGen runs).
STREAM_ROWS: range = STREAM_ROWS_BY_VENDOR.get(cpu_vendor(), range(0))
ONEDNN_ROWS: range = ONEDNN_ROWS_BY_VENDOR.get(cpu_vendor(), range(0)) if _has_onednn_linear() else range(0)


def project(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight.T for x (..., in), weight (out, in) -> (..., out); on CPU through the path that reads the
    weights fastest for this many rows: W @ x.T (STREAM_ROWS), oneDNN (ONEDNN_ROWS, large weights), else F.linear."""
    # bf16 weights read fastest through F.linear on the AMD machine too (docs/performance.md).
    if not x.is_cpu or weight.dtype != torch.float32 or torch.jit.is_tracing():
        return F.linear(x, weight)  # traced code (ONNX export) has symbolic row counts
    rows = x.numel() // x.shape[-1]  # symbolic under torch.compile: hence bounds compared, not `in`
    inference = not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    compiling = torch.compiler.is_compiling()
    if inference and ONEDNN_ROWS.start <= rows < ONEDNN_ROWS.stop and weight.numel() >= ONEDNN_MIN_WEIGHT:
        return _onednn(x, weight, rows)
    if not STREAM_ROWS.start <= rows < STREAM_ROWS.stop or (compiling and not inference):
        return F.linear(x, weight)  # compiled training leaves the product to the compiler
    y = _stream(x, weight, rows)  # (out, rows)
    if compiling:  # a compiled decode pass (compiled.py) leaves the transpose to the fused kernel that reads it
        out = y.T
    elif y.requires_grad:
        out = y.T.contiguous()
    else:  # numpy transposes a (out, few) matrix several times faster than torch's strided copy (docs/performance.md)
        out = torch.from_numpy(np.ascontiguousarray(y.numpy().T))
    return out.reshape(*x.shape[:-1], weight.shape[0])


def _onednn(x: Tensor, weight: Tensor, rows: int) -> Tensor:
    """x @ weight.T through oneDNN's linear on the dense weight; it has no backward: inference only."""
    flat = x.reshape(rows, x.shape[-1]).contiguous()
    return _onednn_linear(flat, weight).view(*x.shape[:-1], weight.shape[0])


# Opaque to torch.compile, whose lowering of oneDNN's linear expects a prepacked weight.
@torch.library.custom_op("gptimg::onednn_linear", mutates_args=())
def _onednn_linear(x: Tensor, weight: Tensor) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")


@_onednn_linear.register_fake
def _(x: Tensor, weight: Tensor) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


def _stream(x: Tensor, weight: Tensor, rows: int) -> Tensor:
    """W @ x.T (out, rows) for x (..., in) holding `rows` rows."""
    # Both copies are a few KB. A transposed x (the previous project's raw output) sends MKL down a path that read
    # the 768x2048 w2 weight 6x slower (docs/performance.md).
    flat = x.reshape(rows, x.shape[-1]).contiguous()  # (rows, in)
    if rows == 1:  # MKL's one-column product streams the weight far slower than two columns (docs/performance.md)
        return torch.mm(weight, flat.repeat(2, 1).T)[:, :1]  # (out, 1)
    return torch.mm(weight, flat.T)  # (out, rows)


class Linear(nn.Linear):
    """Bias-free linear layer that uses `project` (same parameters as nn.Linear)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return project(x, self.weight)
