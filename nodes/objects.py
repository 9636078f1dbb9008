"""The objects that travel along gptimg links (GPTIMG_MODEL, GPTIMG_VQ, ...). No ComfyUI imports here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..gptimg_core import GPT, TextEncoder, VQModel
from ..gptimg_core.janus import JanusModel, JanusPromptEncoder, JanusVQ
from ..gptimg_core.preview import PreviewMap

MODEL = "GPTIMG_MODEL"
VQ = "GPTIMG_VQ"
TEXT_ENCODER = "GPTIMG_TEXT_ENCODER"
COND = "GPTIMG_COND"
TOKENS = "GPTIMG_TOKENS"


class Managed(Protocol):
    """A model under ComfyUI's model management (see comfy_adapter.Managed)."""

    def describe_device(self) -> str: ...


@dataclass(frozen=True)
class GPTImgModel:
    """GPTIMG_MODEL: an image-token model (LlamaGen GPT or Janus), its model-management handle, its file name and
    class names (c2i)."""

    gpt: GPT | JanusModel
    managed: Managed
    name: str
    class_names: tuple[str, ...] | None

    def summary(self) -> str:
        """One line saying what was loaded, for the loader's UI text."""
        names = ""
        if self.gpt.kind == "c2i":
            names = f", names: {', '.join(self.class_names[:3])}, ..." if self.class_names else ", no class names"
        return (
            f"{self.name}: {self.gpt.describe()}{names}; {self.managed.describe_device()}. "
            f"Recommended (what a sampling widget at -1 uses): {self.gpt.recommended.describe()}"
        )


@dataclass(frozen=True)
class GPTImgVQ:
    """GPTIMG_VQ: a VQ tokenizer, its handle, a content id (tokens remember it) and its preview map."""

    vq: VQModel | JanusVQ
    managed: Managed
    name: str
    vq_id: str
    preview: PreviewMap

    @property
    def codebook_size(self) -> int:
        return self.vq.codebook_size

    @property
    def downsample(self) -> int:
        return self.vq.downsample


@dataclass(frozen=True)
class GPTImgTextEncoder:
    """GPTIMG_TEXT_ENCODER: a T5 encoder + tokenizer (or a Janus prompt tokenizer) and its handle."""

    encoder: TextEncoder | JanusPromptEncoder
    managed: Managed
    name: str


@dataclass(frozen=True)
class GPTImgCond:
    """GPTIMG_COND: one image's condition, on the CPU. t2i: features (1, T, C) and mask (1, T) bool
    (left-padded), or for Janus prompt ids (1, T) int64 and mask (1, T); c2i: class ids (1,). uncond/uncond_mask: the negative (None: the model's null)."""

    kind: str  # "t2i" or "c2i"
    cond: Tensor
    mask: Tensor | None = None
    uncond: Tensor | None = None
    uncond_mask: Tensor | None = None
    text: str = ""  # the prompt or class, for messages


def condition_kwargs(positive: GPTImgCond, negative: GPTImgCond | None, batch: int) -> dict[str, Tensor | None]:
    """Core keyword arguments (cond, cond_mask, uncond, uncond_mask) for `batch` images; a connected
    negative replaces the positive's own negative."""

    def rows(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.expand(batch, *x.shape[1:]).contiguous()

    if negative is not None:
        uncond, uncond_mask = negative.cond, negative.mask
    else:
        uncond, uncond_mask = positive.uncond, positive.uncond_mask
    if positive.kind == "t2i" and uncond is not None and uncond_mask is None:
        uncond_mask = torch.ones(uncond.shape[:2], dtype=torch.bool)
    return {
        "cond": rows(positive.cond),
        "cond_mask": rows(positive.mask),
        "uncond": rows(uncond),
        "uncond_mask": rows(uncond_mask),
    }


@dataclass(frozen=True)
class GPTImgTokens:
    """GPTIMG_TOKENS: codes (B, h, w) int64 on the CPU and what they belong to: the VQ (its id, when
    known), the codebook size and the VQ's downsample factor (pixels per token side, when known)."""

    codes: Tensor
    codebook_size: int
    vq_id: str | None = None
    downsample: int | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.codes.shape[1]), int(self.codes.shape[2])

    @property
    def batch(self) -> int:
        return int(self.codes.shape[0])

    def with_codes(self, codes: Tensor) -> GPTImgTokens:
        """Same VQ, new codes (B', h', w')."""
        return GPTImgTokens(codes.cpu(), self.codebook_size, self.vq_id, self.downsample)
