"""Turning logits into tokens: classifier-free guidance, temperature, top-k, top-p, seeded draws.

All functions return new tensors; none edits its input in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_choice, check_float, check_int

DECODINGS = ("ar", "sjd", "jacobi")
WINDOW = 8  # drafted tokens per pass by default (bench/sjd_speed.py, README Performance)

# Guidance past this overflows fp32 logits into inf - inf = NaN (LlamaGen's models are run at 1.5 to 10).
MAX_CFG = 1000.0


@dataclass(frozen=True)
class SamplingOptions:
    """How to draw each token. top_k=0 and top_p=1.0 switch those filters off; top_k=1 is greedy.

    Every default here is "off" (no guidance, no filter, temperature 1: the model's own distribution); what to
    use with a given model is that model's `recommended` (settings.py), which `resolve` fills in."""

    cfg_scale: float = 1.0
    cfg_interval: int = -1  # after this many decode steps use the conditional logits alone; -1: never
    cfg_schedule: str = "constant"  # "constant", or "linear": scale grows from 1 to cfg_scale over the image
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    # "ar": one token per forward pass; "sjd": speculative Jacobi decoding (decode_sjd.py); "jacobi": the same
    # with every position's noise drawn first, giving ar's tokens for the same seed (decode_jacobi.py)
    decoding: str = "ar"
    window: int = WINDOW  # drafted tokens per pass (sjd, jacobi)

    def check(self, where: str) -> None:
        """Raise a TypeError/ValueError naming `where` and the bad argument (bools, non-finite numbers included)."""
        check_float(
            where, "cfg_scale", self.cfg_scale, minimum=1.0, maximum=MAX_CFG, hint=" (1.0 switches guidance off)"
        )
        check_choice(where, "cfg_schedule", self.cfg_schedule, ("constant", "linear"))
        check_int(where, "cfg_interval", self.cfg_interval, minimum=-1, hint=" (-1: guide every step)")
        check_float(where, "temperature", self.temperature, minimum=0.0, hint=" (0 = greedy)")
        check_int(where, "top_k", self.top_k, minimum=0, hint=" (0 = off)")
        top_p = check_float(where, "top_p", self.top_p, maximum=1.0, hint=" (1.0 = off)")
        if not top_p > 0.0:
            raise ValueError(f"{where}: top_p must be in (0, 1] (1.0 = off), got {top_p}")
        check_choice(where, "decoding", self.decoding, DECODINGS)
        check_int(where, "window", self.window, minimum=1, hint=" (drafted tokens per pass)")

    @property
    def greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale > 1.0

    def guidance(self, step: int, total: int) -> float | None:
        """CFG scale for image token `step` (0-based) of `total`, or None for conditional logits alone.

        LlamaGen's cfg_interval counts decode steps after the first (prefill) token: token `step`
        uses guidance while step - 1 <= cfg_interval.
        """
        if not self.uses_cfg or (self.cfg_interval > -1 and step - 1 > self.cfg_interval):
            return None
        if self.cfg_schedule == "linear":
            return 1.0 + (self.cfg_scale - 1.0) * (step + 1) / total
        return self.cfg_scale


def guide(logits: Tensor, scale: float | None) -> Tensor:
    """(2B, V) logits [cond; uncond] -> (B, V): uncond + (cond - uncond) * scale (cond alone if None)."""
    cond, uncond = logits.chunk(2, dim=0)
    if scale is None:
        return cond
    return uncond + (cond - uncond) * scale


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set logits outside the top-k / nucleus (top-p) support to -inf. logits (B, V) float."""
    out = logits
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # (B, 1)
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the mass before it already exceeds top_p; the first always stays
        drop_sorted = torch.zeros_like(cum, dtype=torch.bool)
        drop_sorted[..., 1:] = cum[..., :-1] > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


Generators = torch.Generator | Sequence[torch.Generator] | None


def image_generators(seed: int, n: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per image: image i draws from seed + i, so it comes out the same in any batch."""
    return [torch.Generator(device).manual_seed(seed + i) for i in range(n)]


class Draws:
    """The random numbers of a batch of R rows, `per_image` consecutive rows per image.

    With one generator per image, image b's rows draw from generators[b] alone and only when they need a
    number, so an image's draws do not depend on the rest of the batch. A single generator (or None: torch's
    default) serves all rows in row order.
    """

    def __init__(self, generators: Generators, rows: int, per_image: int = 1) -> None:
        self.rows, self.per_image = rows, per_image
        if isinstance(generators, torch.Generator) or generators is None:
            self.shared, self.generators = generators, None
        else:
            self.shared, self.generators = None, list(generators)
            if len(self.generators) * per_image != rows:
                raise ValueError(
                    f"sampling: {len(self.generators)} generators for {rows // per_image} images; give one generator "
                    f"per image (image_generators(seed, n)) or a single one"
                )

    def repeat(self, n: int) -> Draws:
        """The same generators for n rows per row (n candidates per image)."""
        gens = self.shared if self.generators is None else self.generators
        return Draws(gens, self.rows * n, self.per_image * n)

    def _fill(self, out: Tensor, need: Tensor | None, fill) -> Tensor:
        rows = range(self.rows) if need is None else need.nonzero().flatten().tolist()
        if self.generators is None:
            if need is None:
                return fill(out, self.shared)
            picked = fill(torch.empty((len(rows), *out.shape[1:]), device=out.device), self.shared)
            out[rows] = picked
            return out
        for r in rows:
            out[r] = fill(torch.empty(out.shape[1:], device=out.device), self.generators[r // self.per_image])
        return out

    def exponential(self, shape: tuple[int, ...], device: torch.device, need: Tensor | None = None) -> Tensor:
        """Exp(1) noise (R, ...) for the rows `need` (R,) marks (all when None); 1 elsewhere."""
        gen = self._device()
        out = torch.ones(shape, device=gen)
        return self._fill(out, need, lambda x, g: x.exponential_(1.0, generator=g)).to(device)

    def uniform(self, shape: tuple[int, ...], device: torch.device, need: Tensor | None = None) -> Tensor:
        """U[0, 1) numbers (R, ...) for the rows `need` (R,) marks; 0 elsewhere."""
        out = torch.zeros(shape, device=self._device())
        return self._fill(out, need, lambda x, g: x.uniform_(0.0, 1.0, generator=g)).to(device)

    def _device(self) -> torch.device:
        g = self.shared if self.generators is None else self.generators[0]
        return g.device if g is not None else torch.device("cpu")


def probabilities(logits: Tensor, opts: SamplingOptions) -> Tensor:
    """The distribution a token is drawn from: logits (B, V) -> fp32 probabilities (B, V) after temperature,
    top-k and top-p; greedy (top_k 1 or temperature 0) is one-hot on the argmax."""
    if opts.greedy:
        return torch.zeros_like(logits, dtype=torch.float32).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    return filter_logits(logits.float() / opts.temperature, opts.top_k, opts.top_p).softmax(-1)


def draw(probs: Tensor, draws: Draws, need: Tensor | None = None) -> Tensor:
    """One token per row and position from probs (R, ..., V) -> LongTensor (R, ...); rows outside `need`
    get the argmax."""
    # Exponential race (Gumbel-max in disguise): argmax p / E with E ~ Exp(1) draws from p.
    return (probs / draws.exponential(tuple(probs.shape), probs.device, need)).argmax(-1)


def sample(logits: Tensor, opts: SamplingOptions, draws: Draws, need: Tensor | None = None) -> Tensor:
    """Draw one token per row from logits (B, V) -> LongTensor (B,); greedy draws no random numbers."""
    if opts.greedy:
        return logits.argmax(-1)
    return draw(probabilities(logits, opts), draws, need)
