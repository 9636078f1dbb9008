"""Canonical training targets for flat tokens (gptimg_core/train/canonical.py)."""

import numpy as np
import pytest
import torch

from gptimg_core.builtin import builtin_path
from gptimg_core.checkpoint import load_vq
from gptimg_core.images import from_uint8, to_uint8
from gptimg_core.shapes.world import COLOUR_NAMES, COLOURS
from gptimg_core.train.canonical import canonical_codes, canonicalize, flat_colours
from gptimg_core.train.data import text_batch
from gptimg_core.train.train_gpt import tokenize_scenes

BLUE, RED = COLOUR_NAMES.index("blue"), COLOUR_NAMES.index("red")


def _square_scene() -> torch.Tensor:
    """64x64 blue image with a red 32x32 square on token rows/cols 2..5 (8 px tokens)."""
    img = np.empty((64, 64, 3), np.uint8)
    img[:] = COLOURS["blue"]
    img[16:48, 16:48] = COLOURS["red"]
    return from_uint8(img)


def test_flat_colours_marks_every_token_whose_patch_is_one_palette_colour():
    c = flat_colours(_square_scene(), 8)[0]  # (8, 8)
    assert c.shape == (8, 8)
    assert (c[2:6, 2:6] == RED).all()  # the square covers whole tokens
    assert int((c == BLUE).sum()) == 64 - 16 and int((c == -1).sum()) == 0
    img = to_uint8(_square_scene())[0]
    img[24:32, 40:60] = COLOURS["green"]  # fills tokens (3, 5) and (3, 6), half of (3, 7)
    c = flat_colours(from_uint8(img), 8)[0]
    assert (c[3, 5:7] == COLOUR_NAMES.index("green")).all() and c[3, 7] == -1 and int((c == -1).sum()) == 1


def test_flat_colours_skips_patches_that_are_not_one_palette_colour():
    img = np.full((64, 64, 3), 128, np.uint8)  # flat grey: not a palette colour
    assert (flat_colours(from_uint8(img), 8) == -1).all()
    img = np.empty((64, 64, 3), np.uint8)
    img[:] = COLOURS["white"]
    img[20, 20] = COLOURS["black"]  # one pixel breaks token (2, 2) only
    c = flat_colours(from_uint8(img), 8)[0]
    assert c[2, 2] == -1 and int((c == -1).sum()) == 1


def test_canonical_codes_pick_each_colours_commonest_code_and_canonicalize_replaces_only_those():
    colours = torch.tensor([[BLUE, BLUE, BLUE, -1, RED]])
    codes = torch.tensor([[5, 9, 9, 3, 4]])
    table = canonical_codes(codes, colours)
    assert table[BLUE] == 9 and table[RED] == 4 and (table[[i for i in range(8) if i not in (BLUE, RED)]] == -1).all()
    new = canonicalize(torch.tensor([[1, 2, 3, 4, 5]]), colours, table)
    assert new.tolist() == [[9, 9, 9, 4, 4]]
    green = COLOUR_NAMES.index("green")  # a colour the table lacks keeps its codes
    assert canonicalize(torch.tensor([[6]]), torch.tensor([[green]]), table).tolist() == [[6]]
    with pytest.raises(ValueError, match=r"canonicalize: codes \(1, 5\) and colours \(1, 4\) differ"):
        canonicalize(codes, colours[:, :4], table)


def test_canonical_codes_follow_the_codes_device():
    """Colours come from pixels on the CPU while the codes may sit on a GPU (eval --device cuda): both
    functions work on the codes' device. The meta device stands in for a GPU here (no data, same checks)."""
    codes = torch.zeros(2, 8, 8, dtype=torch.long, device="meta")
    colours, table = torch.zeros(2, 8, 8, dtype=torch.long), torch.arange(8)
    assert canonicalize(codes, colours, table).device.type == "meta"
    with pytest.raises(RuntimeError, match="device"):  # what a lookup on the CPU's devices alone does
        torch.where(colours >= 0, table[colours], codes)


def test_canonical_targets_decode_close_to_the_raw_codes_with_the_builtin_vq():
    vq = load_vq(builtin_path("vq"))
    pool, table = tokenize_scenes(vq, 96, "t2i", seed=5)
    assert table.tolist() == list(range(8))  # flat codes (train_vq.py): each colour's own code
    changed = pool.codes != pool.targets
    assert 0.03 < changed.float().mean() < 0.2  # the flat patches the encoder gives another code: about 1 in 10
    pixels, prompts = text_batch(np.random.default_rng(5), 96)  # the same scenes as the pool
    assert prompts == pool.conds
    truth = to_uint8(pixels).astype(np.float64)

    def psnr(codes: torch.Tensor) -> float:
        with torch.no_grad():
            out = to_uint8(vq.decode(codes.view(-1, 8, 8))).astype(np.float64)
        return 10 * np.log10(255**2 / ((out - truth) ** 2).mean())

    raw, canon = psnr(pool.codes), psnr(pool.targets)
    # The decoder learnt to draw flat patches from their own codes (flat_codes), so canonical targets decode
    # about as well as raw codes; a VQ trained without them lost several dB (docs/training-notes.md, stage 3).
    assert raw > 26 and canon > raw - 0.5
