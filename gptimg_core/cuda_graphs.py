"""A GPT's short decode passes replayed from CUDA graphs (on by default on CUDA; `gpt.cuda_graphs`).

On a GPU a decode step is a few hundred small kernels, each launched from Python; the launches, not the
GPU, set the step's time. A CUDA graph records the kernels of one pass once and replays them in one call.
A recorded pass has fixed sizes and fixed buffers, so it is `GPT.step`: tokens padded to a bucket length,
positions read from a device tensor, attention over the whole (zeroed) cache under a mask made on the device.
torch.cuda.CUDAGraph is used directly rather than torch.compile's "reduce-overhead": a capture records one
pass as it runs, with no compiler and no compile time. Each graph's first replay is checked
against an uncaptured pass; a mismatch or a failed capture turns graphs off for the model, with a warning.
Prefills and passes longer than the largest bucket (kept runs of inpainting) run uncaptured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32)  # pass lengths with a graph each; a pass is padded up to the next


def wanted(gpt) -> bool:
    """Whether gpt's decode states use fixed-size passes (captured on CUDA)."""
    return gpt.cuda_graphs is True or (gpt.cuda_graphs is None and gpt.device.type == "cuda")


def cache_len(seq_len: int) -> int:
    """Cache rows for fixed-size passes: room for the padding of a pass at the end, rounded to 16 (the keys'
    stride that CUDA's memory-efficient attention wants for an explicit mask)."""
    return -(-(seq_len + BUCKETS[-1]) // 16) * 16


@dataclass
class _Pass:
    """One pass shape's input buffers, its graph (None uncaptured) and its output."""

    tokens: Tensor  # (R, T) long
    start: Tensor  # (R,) long: each row's first token's position
    pick: Tensor | None  # (1,) long: the row whose logits a last-only pass returns
    graph: torch.cuda.CUDAGraph | None = None
    out: Tensor | None = None
    checked: bool = False


class GraphedPasses:
    """The fixed-size passes of one decode state (gpt.GPTState), one per (rows, bucket, last_only)."""

    def __init__(self, state, *, capture: bool) -> None:
        self.state, self.capture = state, capture
        self.passes: dict[tuple[int, int, bool], _Pass] = {}
        self.replays = 0  # passes served by a replayed graph (read by the tests)

    def serves(self, n: int) -> bool:
        """Whether a pass of n tokens goes through here (else the plain, uncaptured pass)."""
        return n <= BUCKETS[-1] and self.state.gpt.cuda_graphs is not False

    def __call__(self, tokens: Tensor, start: int | Tensor, last_only: bool) -> Tensor:
        """tokens (R, n) at sequence positions start.. (every row's, or each row's (R,)) -> fp32 logits (R, n, V),
        or (R, 1, V) when last_only."""
        R, n = tokens.shape
        T = next(b for b in BUCKETS if b >= n)
        key = (R, T, last_only)
        p = self.passes.get(key)
        if p is None:
            p = self.passes[key] = self._buffers(R, T, last_only, tokens.device)
        p.tokens[:, :n] = tokens  # rows past n keep whatever they held: their outputs are never read
        if isinstance(start, Tensor):
            p.start.copy_(start)
        else:
            p.start.fill_(start)
        if p.pick is not None:
            p.pick.fill_(n - 1)
        if not self.capture:
            out = self._run(p)
        elif p.graph is None:
            out = self._record(p)
        else:
            p.graph.replay()
            out = p.out.clone()  # the next replay overwrites p.out
            self.replays += 1
            if not p.checked:
                out = self._check(p, out)
        return out if last_only else out[:, :n]

    def _buffers(self, R: int, T: int, last_only: bool, device: torch.device) -> _Pass:
        zeros = torch.zeros  # any token id is valid in a padding row
        pick = zeros(1, dtype=torch.long, device=device) if last_only else None
        return _Pass(zeros(R, T, dtype=torch.long, device=device), zeros(R, dtype=torch.long, device=device), pick)

    def _run(self, p: _Pass) -> Tensor:
        s = self.state
        return s.gpt.step(p.tokens, p.start, s.cache, s.key_ok, p.pick)

    def _record(self, p: _Pass) -> Tensor:
        """Run the pass (capture wants its kernels run once first) and record it, both on a side stream."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        # capture_begin/end rather than torch.cuda.graph(), which syncs and empties the allocator's cache each capture
        with torch.cuda.stream(side):
            out = self._run(p)
            try:
                graph.capture_begin(capture_error_mode="thread_local")  # other threads (ComfyUI's) may use CUDA
                try:
                    p.out = self._run(p)
                finally:
                    graph.capture_end()
            except RuntimeError as e:  # an op that cannot be captured: correct results without graphs
                self._give_up(f"capturing a pass failed ({e})")
                graph = None
        torch.cuda.current_stream().wait_stream(side)
        out.record_stream(torch.cuda.current_stream())  # read there next: its memory is not free before that
        p.graph = graph
        return out

    def _check(self, p: _Pass, replayed: Tensor) -> Tensor:
        """A graph's first replay against the same pass uncaptured (it rewrites the same cache rows)."""
        ref = self._run(p)
        p.checked = True
        worst = float((replayed - ref).abs().max())
        tol = 1e-3 if self.state.gpt.tok_embeddings.weight.dtype == torch.float32 else 3e-2  # relative to the logits
        if not worst <= tol * (1 + float(ref.abs().max())):  # NaN fails too
            self._give_up(f"a replayed pass differed from the uncaptured one by {worst:.3g}")
        return ref

    def _give_up(self, why: str) -> None:
        log.warning("CUDA graphs turned off for this model: %s; decoding goes on without them", why)
        self.state.gpt.cuda_graphs = False
        self.passes.clear()
