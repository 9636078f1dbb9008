"""Training data drawn on the fly from the shapes world (no files)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...images import from_uint8
from ..shapes import describe, place, render, sample_class_spec, sample_spec
from ..shapes.world import (
    COLOUR_NAMES,
    HELD_OUT_TRIPLES,
    MAX_OBJECTS,
    NUM_CLASSES,
    SHAPES,
    ObjectSpec,
    Scene,
    SceneSpec,
    boxes_overlap,
    in_reading_order,
)

IMAGE_SIZE = 64


def text_scenes(rng: np.random.Generator, n: int, split: str = "train", reading_order: bool = False) -> list[Scene]:
    """n placed scenes of every prompt form. reading_order: two-object specs name first the object
    that starts first in raster order."""
    specs = [sample_spec(rng, split=split) for _ in range(n)]  # every spec, then every placement
    scenes = [place(s, rng) for s in specs]
    return [in_reading_order(s) for s in scenes] if reading_order else scenes


def text_batch(
    rng: np.random.Generator, n: int, split: str = "train", reading_order: bool = False
) -> tuple[Tensor, list[str]]:
    """n scenes of every prompt form (text_scenes): pixels (n, 3, 64, 64) in [-1, 1] and their prompts."""
    scenes = text_scenes(rng, n, split, reading_order)
    return render_scenes(scenes), [describe(s.spec) for s in scenes]


def render_scenes(scenes: list[Scene]) -> Tensor:
    """Pixels (n, 3, 64, 64) in [-1, 1] of placed scenes."""
    return from_uint8(np.stack([render(s, IMAGE_SIZE) for s in scenes]))


def object_boxes(scenes: list[Scene]) -> Tensor:
    """Each scene's object boxes (n, 2, 4) as (x0, y0, x1, y1) in units of the image side; NaN rows
    where a scene has one object."""
    boxes = torch.full((len(scenes), MAX_OBJECTS, 4), float("nan"))
    for i, s in enumerate(scenes):
        for j, o in enumerate(s.objects):
            boxes[i, j] = torch.tensor(o.box())
    return boxes


def tokenizer_batch(
    rng: np.random.Generator, n: int, max_objects: int = 4, *, size: str | None = None, star_share: float = 0.0
) -> Tensor:
    """n crowded scenes for the VQ, pixels (n, 3, 64, 64) in [-1, 1]: 1..max_objects non-overlapping
    objects of training triples, so that fewer of its pixels are flat background. size: every object
    "small" or "large" (None: either); star_share: that share of the objects are stars (0: shapes uniform,
    and the same draws as before the option existed)."""
    images = []
    for _ in range(n):
        bg = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        want, placed = int(rng.integers(1, max_objects + 1)), []
        for _ in range(4 * want):
            colour, shape = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], SHAPES[rng.integers(len(SHAPES))]
            if star_share > 0 and rng.random() < star_share:
                shape = "star"
            if colour == bg or (colour, shape, bg) in HELD_OUT_TRIPLES:
                continue
            o = place(SceneSpec(bg, (ObjectSpec(colour, shape, size),)), rng).objects[0]
            if not any(boxes_overlap(o, q) for q in placed):
                placed.append(o)
            if len(placed) == want:
                break
        if not placed:
            continue
        spec = SceneSpec(bg, (ObjectSpec(placed[0].colour, placed[0].shape),))  # the scene's first object
        images.append(render(Scene(spec, bg, tuple(placed)), IMAGE_SIZE))
    while len(images) < n:  # a scene whose every draw was rejected: reuse one
        images.append(images[rng.integers(len(images))])
    return from_uint8(np.stack(images))


def mixed_tokenizer_batch(rng: np.random.Generator, n: int, small_share: float, small_star_share: float) -> Tensor:
    """n tokenizer scenes: crowded ones (tokenizer_batch), then the last round(n * small_share) of them
    scenes of small objects only, small_star_share of those objects stars (0: exactly tokenizer_batch)."""
    small = round(n * small_share)
    parts = [tokenizer_batch(rng, n - small)] if small < n else []
    if small:
        parts.append(tokenizer_batch(rng, small, size="small", star_share=small_star_share))
    return torch.cat(parts)


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
