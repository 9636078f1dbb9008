"""Canonical training targets for flat patches.

A VQ trained the usual way spreads one flat colour over hundreds of codes, all of which decode to about
the same flat patch: which one a patch gets depends on the edges around it. A GPT trained on raw codes
spends most of its loss guessing among them (docs/training-notes.md, stage 2). Here every token whose patch
is one flat palette colour is replaced, as a training target, by that colour's commonest code. The
built-in VQ is trained with flat codes (train_vq.py), so its own code for a flat colour is that
colour's code and the decoder draws edges from the edge tokens alone; the rewrite then only mends the
flat patches its encoder gives another code (about one in ten). Nothing here is needed at inference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..images import from_uint8
from ..shapes.world import COLOUR_NAMES, COLOURS


def flat_colours(pixels: Tensor, patch: int) -> Tensor:
    """Shapes-world pixels (n, 3, H, W) in [-1, 1] -> (n, H/patch, W/patch) long: the palette index of
    each token whose patch is all that one colour, else -1."""
    n, _, H, W = pixels.shape
    h, w = H // patch, W // patch
    p = pixels.reshape(n, 3, h, patch, w, patch).permute(0, 2, 4, 1, 3, 5).reshape(n, h, w, 3, patch * patch)
    flat = (p == p[..., :1]).all(-1).all(-1)  # (n, h, w)
    palette = from_uint8(np.array([[COLOURS[c] for c in COLOUR_NAMES]]))[0, :, 0].T  # (8, 3), as pixels hold them
    hit = (p[..., 0][..., None, :] == palette).all(-1)  # (n, h, w, 8)
    return torch.where(flat & hit.any(-1), hit.long().argmax(-1), -1)


def canonical_codes(codes: Tensor, colours: Tensor) -> Tensor:
    """The commonest code of each palette colour's flat tokens -> (8,) long; -1 for a colour with
    none. codes and colours (n, N) or (n, h, w), colours as from flat_colours."""
    table = torch.full((len(COLOUR_NAMES),), -1, dtype=torch.long, device=codes.device)
    colours = colours.to(codes.device)
    for c in range(len(COLOUR_NAMES)):
        seen = codes[colours == c]
        if len(seen):
            table[c] = torch.bincount(seen).argmax()
    return table


def canonicalize(codes: Tensor, colours: Tensor, table: Tensor) -> Tensor:
    """codes with every flat token replaced by its colour's entry in table (a new tensor)."""
    if codes.shape != colours.shape:
        raise ValueError(f"canonicalize: codes {tuple(codes.shape)} and colours {tuple(colours.shape)} differ in shape")
    colours, table = colours.to(codes.device), table.to(codes.device)  # colours come from pixels, often on the CPU
    canon = table[colours.clamp(min=0)]  # (same shape) the colour's code, junk where colours is -1
    return torch.where((colours >= 0) & (canon >= 0), canon, codes)
