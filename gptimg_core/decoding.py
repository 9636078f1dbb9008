"""One sampling request as the decoders see it, and the choice of decoder (plain or speculative Jacobi)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .sampling import Draws, SamplingOptions, guide, probabilities
from .token_model import Condition, DecodeState, TokenModel

# callback(step, total, tokens_so_far (B, step)); raising from it cancels generation.
Callback = Callable[[int, int, Tensor], None]
# observe(t, token_t (B,), raw (rows, V): [cond; null] while guided, logits (B, V) token t is drawn from):
# the logits that predict position t, for every position in order.
Observer = Callable[[int, Tensor, Tensor, Tensor], None]


@dataclass
class Request:
    """B sequences of model.grid**2 tokens to sample on `cond`; where keep (B, N) is True the token is
    known (B, N)'s. `passes` counts the model's forward passes (prefill included)."""

    model: TokenModel
    cond: Condition
    opts: SamplingOptions
    draws: Draws
    known: Tensor | None = None
    keep: Tensor | None = None
    passes: int = 0

    def __post_init__(self) -> None:
        device = self.model.device
        if self.keep is not None:
            self.keep, self.known = self.keep.to(device), self.known.to(device)

    @property
    def batch(self) -> int:
        return self.cond.batch

    @property
    def num_tokens(self) -> int:
        return self.model.grid**2

    def initial_tokens(self) -> Tensor:
        """(B, N) LongTensor holding the known tokens where kept, 0 elsewhere."""
        tokens = torch.zeros(self.batch, self.num_tokens, dtype=torch.long, device=self.model.device)
        return tokens if self.keep is None else torch.where(self.keep, self.known, tokens)


def guided_logits(raw: Tensor, batch: int, opts: SamplingOptions, start: int | list[int], total: int) -> Tensor:
    """raw (R, L, V) for image positions start..start+L-1 (row b's from start[b] when a list), [cond; null] rows
    (R = 2B) or cond rows alone -> the logits (B, L, V) the tokens are drawn from, each position at its own
    CFG scale."""
    if raw.shape[0] != 2 * batch:
        return raw
    cond, null = raw[:batch], raw[batch:]
    starts = [start] if isinstance(start, int) else start
    scales = [[opts.guidance(s + j, total) for j in range(raw.shape[1])] for s in starts]  # (1 or B, L)
    if all(s is None for row in scales for s in row):
        return cond
    scale = torch.tensor([[1.0 if s is None else s for s in row] for row in scales], device=raw.device)
    off = torch.tensor([[s is None for s in row] for row in scales], device=raw.device)
    # as guide() computes it, position by position
    return torch.where(off[..., None], cond, null + (cond - null) * scale[..., None])


def window_pass(
    req: Request, state: DecodeState, seq: Tensor, n: list[int], guided: bool
) -> tuple[list[int], list[int], Tensor, bool]:
    """One pass of a window decoder (sjd, jacobi): feed seq (B, N), each row's last accepted token and its
    window of opts.window drafts. n: each row's accepted count. -> (each row's first fed position a_r, the rows
    whose window the pass covers, target probabilities (B, L, V) whose column j of row r is position
    a_r + j + 1, whether the null half still runs)."""
    opts, N, B = req.opts, req.num_tokens, req.batch
    if guided and opts.guidance(min(n), N) is None:
        guided = False  # guidance is over for every position still to verify: drop the null half
        state.keep_rows(B)
    windows = _own_windows if state.per_row_positions else _one_span
    a, moving, fed, at = windows(seq, n, opts.window)
    if guided:
        fed = torch.cat([fed, fed])
        at = torch.cat([at, at]) if isinstance(at, Tensor) else at
    raw = state.feed(fed, at)  # (R, L, V): [r, j] predicts a_r + j + 1
    req.passes += 1
    return a, moving, probabilities(guided_logits(raw, B, opts, [s + 1 for s in a], N), opts), guided


def _own_windows(seq: Tensor, n: list[int], W: int) -> tuple[list[int], list[int], Tensor, int | Tensor]:
    """Each row's W + 1 positions from its last accepted token (moved back near the end, so that the window
    stays inside the grid) -> (a, every unfinished row, tokens (B, W + 1), where: one start or each row's (B,))."""
    B, N = seq.shape
    L = min(W + 1, N)
    a = [min(k - 1, N - L) for k in n]  # finished rows feed their last tokens again: the same keys
    starts = torch.tensor(a, device=seq.device)
    fed = seq.gather(1, starts[:, None] + torch.arange(L, device=seq.device))  # (B, L)
    at = a[0] if len(set(a)) == 1 else starts  # one start for all: the family's plain pass
    return a, [r for r in range(B) if n[r] < N], fed, at


# Fed as one span: how far ahead of the slowest row a row may run before it sits a pass out, in windows.
MAX_SPREAD_WINDOWS = 1


def _one_span(seq: Tensor, n: list[int], W: int) -> tuple[list[int], list[int], Tensor, int]:
    """For a model that feeds every row at one start: from the slowest row's last accepted token to the end of
    the farthest window of a row that moves -> (a, the rows that move, tokens (B, L), the start)."""
    B, N = seq.shape
    a0 = min(n) - 1
    ends = [min(k + W, N) for k in n]  # each row's window: positions n_r .. ends_r - 1
    limit = a0 + 1 + (1 + MAX_SPREAD_WINDOWS) * W
    moving = [r for r in range(B) if n[r] < N and ends[r] <= limit]
    L = max(ends[r] for r in moving) - a0  # fed positions a0 .. a0 + L - 1
    return [a0] * B, moving, seq[:, a0 : a0 + L], a0


def replay(req: Request, tokens: Tensor, observe: Observer, chunk: int = 64) -> None:
    """Call `observe` for every position of finished tokens (B, N) with the logits a teacher-forced pass
    gives them (what a decoder that skipped positions, like SJD, tells an observer)."""
    N, B, opts = req.num_tokens, req.batch, req.opts
    state = req.model.start(req.cond)
    guided = req.cond.guided
    fed = torch.cat([tokens, tokens]) if guided else tokens
    raw = state.prefill()[:, None]  # (R, 1, V)
    req.passes += 1
    t = 0
    while t < N:
        for j in range(raw.shape[1]):
            step = raw[:, j]
            logits = (guide(step, opts.guidance(t, N)) if guided else step)[:B]
            observe(t, tokens[:, t], step, logits)
            t += 1
        if t < N:
            raw = state.feed(fed[:, t - 1 : min(t - 1 + chunk, N - 1)], t - 1)
            req.passes += 1


def run(req: Request, callback: Callback | None = None, observe: Observer | None = None) -> Tensor:
    """Sample req's tokens (B, N) with the decoder req.opts.decoding names."""
    from .decode_ar import decode_ar
    from .decode_jacobi import decode_jacobi
    from .decode_sjd import decode_sjd

    decoders = {"ar": decode_ar, "sjd": decode_sjd, "jacobi": decode_jacobi}
    # inference_mode skips autograd's per-op bookkeeping (ComfyUI runs its nodes in it too; docs/performance.md)
    with torch.inference_mode(), decode_attention(req.model.device):
        tokens = decoders[req.opts.decoding](req, callback, observe)
    return tokens.clone()  # a normal tensor: an inference tensor refuses in-place updates outside inference mode


def decode_attention(device: torch.device):
    """The attention kernels for a decode loop. On CUDA, cuDNN's is left out: with it, a first generation at
    a new batch size ran several times slower (README, Performance)."""
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
