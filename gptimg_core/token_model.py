"""What a decoder needs from an image-token model, whatever its family (LlamaGen's GPT, Janus, an ONNX export).

A family implements `TokenModel`: it checks and batches its own conditions (`condition`) and opens a
`DecodeState` (its KV cache) on them. Decoders (decode_ar.py, decode_sjd.py) speak only this interface, in
image positions 0..num_tokens-1; where those sit in the family's own sequence is the family's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .settings import Recommended


@dataclass
class Condition:
    """The rows a model is conditioned on, already checked by the model's `condition`.

    rows: class ids (R,), caption features (R, T, C) or prompt token ids (R, T), with R = 2B ([cond; null])
    under guidance and B without. mask: (R, T) bool, False where a row is padding; None when every
    position is real. batch: B, the number of images.
    """

    rows: Tensor
    mask: Tensor | None
    batch: int

    @property
    def guided(self) -> bool:
        return self.rows.shape[0] == 2 * self.batch

    def halves(self) -> tuple[Condition, ...]:
        """([cond], [null]) under guidance, else ([cond],): each half a Condition of `batch` rows."""
        if not self.guided:
            return (self,)
        B = self.batch
        masks = (None, None) if self.mask is None else (self.mask[:B], self.mask[B:])
        return Condition(self.rows[:B], masks[0], B), Condition(self.rows[B:], masks[1], B)

    def conditional(self) -> Condition:
        """The conditional half alone (no guidance)."""
        return self.halves()[0]

    def repeat(self, n: int) -> Condition:
        """Each image's rows n times in a row (n candidates per image), keeping the [cond; null] split."""
        parts = self.halves()
        rows = torch.cat([p.rows.repeat_interleave(n, 0) for p in parts])
        mask = None if self.mask is None else torch.cat([p.mask.repeat_interleave(n, 0) for p in parts])
        return Condition(rows, mask, self.batch * n)


@runtime_checkable
class DecodeState(Protocol):
    """One generation's KV cache over a Condition's rows. Feeding at image position t overwrites whatever
    an earlier call left at positions >= t (how speculative decoding rewinds)."""

    # Whether feed takes each row at its own positions (t a (R,) LongTensor): window decoders then feed every
    # row's own window in one pass instead of a span that covers all rows' windows from the slowest row's.
    per_row_positions: bool

    def prefill(self) -> Tensor:
        """Feed the condition rows -> fp32 logits (R, V) predicting image position 0."""
        ...

    def feed(self, tokens: Tensor, t: int | Tensor, *, last_only: bool = False) -> Tensor:
        """Feed image tokens (R, n) at positions t..t+n-1 (row r at t[r].. when t is a tensor) -> fp32 logits
        (R, n, V); [:, j] predicts t+j+1. last_only: (R, 1, V), the last position's alone."""
        ...

    def keep_rows(self, n: int) -> None:
        """Keep the first n rows (the conditional half once guidance is over) and drop the rest."""
        ...


@runtime_checkable
class TokenModel(Protocol):
    """An image-token model: a square grid of `grid` x `grid` codes from a vocabulary of `vocab_size`."""

    kind: str  # "c2i" (class ids) or "t2i" (text: features or prompt ids, as the family takes them)
    grid: int
    vocab_size: int
    device: torch.device
    recommended: Recommended  # what every setting left None stands for

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
        """Check a condition (naming `where` in errors) and build [cond; null] rows when guided."""
        ...

    def start(self, cond: Condition) -> DecodeState:
        """A fresh decode state (an empty cache) for these rows."""
        ...

    def sampling_bytes(self, rows: int) -> int:
        """Estimated peak bytes of decoding `rows` sequences (KV cache, prefill, a step's transients), for
        the check that a request fits before it starts (memory.py)."""
        ...
