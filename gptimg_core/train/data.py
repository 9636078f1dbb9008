"""Training data drawn on the fly from the shapes world (no files)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..images import from_uint8
from ..shapes import describe, place, render, sample_class_spec, sample_spec
from ..shapes.world import COLOUR_NAMES, NUM_CLASSES, SHAPES

IMAGE_SIZE = 64


def text_batch(rng: np.random.Generator, n: int, split: str = "train") -> tuple[Tensor, list[str]]:
    """n scenes of every prompt form: pixels (n, 3, 64, 64) in [-1, 1] and their prompts."""
    specs = [sample_spec(rng, split=split) for _ in range(n)]
    images = np.stack([render(place(s, rng), IMAGE_SIZE) for s in specs])
    return from_uint8(images), [describe(s) for s in specs]


def class_batch(rng: np.random.Generator, n: int, split: str = "train") -> tuple[Tensor, Tensor]:
    """n class-conditional scenes: pixels (n, 3, 64, 64) and class ids (n,)."""
    ids = rng.integers(0, NUM_CLASSES, size=n)
    images = np.stack([render(place(sample_class_spec(rng, int(i), split), rng), IMAGE_SIZE) for i in ids])
    return from_uint8(images), torch.as_tensor(ids, dtype=torch.long)


def vocabulary() -> list[str]:
    """Every word the prompt grammar uses (the built-in T5's word-level vocabulary)."""
    words = [
        "a",
        "an",
        "and",
        "on",
        "in",
        "the",
        "background",
        "small",
        "large",
        "center",
        "top",
        "bottom",
        "left",
        "right",
    ]
    return words + list(COLOUR_NAMES) + list(SHAPES)
