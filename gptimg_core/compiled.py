"""The GPT's decode passes compiled with torch.compile on CPU (opt-in: `load_gpt(..., compile=True)`).

Every pass after the prefill that feeds all rows at one start (one-token steps, SJD's verify windows, runs of kept
tokens) goes through it; a window pass with a batch's rows at their own positions (GPT.step) runs eager.
Compiling fuses the small ops between the weight products (norms, RoPE, SwiGLU, residual adds) into a few C++
kernels and drops the per-op Python and module calls; the products themselves stay the BLAS calls `project`
picks. The price is a compile at a model's first passes: seconds to a minute (README, Performance).
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Callable

import torch
from torch import nn

_STEPS: weakref.WeakKeyDictionary[nn.Module, Callable] = weakref.WeakKeyDictionary()


def can_compile() -> bool:
    """True if torch.compile can build CPU kernels here (it needs a C++ compiler)."""
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def enable(gpt: nn.Module, where: str) -> None:
    """Mark gpt's decode passes on CPU for compiling (done at its first pass)."""
    if not can_compile():
        raise ValueError(
            f"{where}: compile needs a C++ compiler for torch.compile on CPU (g++, or the one $CXX names) and "
            f"none was found; install one (e.g. `apt install g++`) or leave compile off"
        )
    gpt.compile_steps = True


def decode_step(gpt: nn.Module) -> Callable:
    """gpt's forward compiled, for its decode passes; made once per model (compiled again for new shapes)."""
    step = _STEPS.get(gpt)
    if step is None:
        # dynamic=None: a size (position, pass length, batch) is made symbolic once it changes
        step = _STEPS[gpt] = torch.compile(gpt.forward, dynamic=None)
    return step
