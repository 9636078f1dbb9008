"""Flat-colour, hard-edged rendering of shapes-world scenes."""

from __future__ import annotations

import math

import numpy as np

from .world import COLOURS, SHAPES, Scene

SQUARE_FILL = 0.85  # a full-box square looks much bigger than the circle beside it
STAR_INNER = 0.4  # inner radius of the star as a fraction of its outer radius
CROSS_ARM = 1 / 3  # arm thickness of the cross as a fraction of the side
CIRCLE_VERTICES = 96

Polygon = list[tuple[float, float]]


def shape_polygon(shape: str, cx: float, cy: float, side: float) -> Polygon:
    """Outline of a shape drawn in the square of `side` centred at (cx, cy), same units as input."""
    h = side / 2
    if shape == "circle":
        ts = np.linspace(0, 2 * math.pi, CIRCLE_VERTICES, endpoint=False)
        return [(cx + h * math.cos(t), cy + h * math.sin(t)) for t in ts]
    if shape == "square":
        q = h * SQUARE_FILL
        return [(cx - q, cy - q), (cx + q, cy - q), (cx + q, cy + q), (cx - q, cy + q)]
    if shape == "triangle":
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    if shape == "star":
        # Shift down so the star's top tip and lower tips sit equally far inside the box.
        dy = h * (1 - math.cos(math.pi / 5)) / 2
        pts = []
        for k in range(10):
            r = h if k % 2 == 0 else h * STAR_INNER
            t = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(t), cy + dy + r * math.sin(t)))
        return pts
    if shape == "cross":
        a = side * CROSS_ARM / 2
        return [
            (cx - a, cy - h), (cx + a, cy - h), (cx + a, cy - a), (cx + h, cy - a),
            (cx + h, cy + a), (cx + a, cy + a), (cx + a, cy + h), (cx - a, cy + h),
            (cx - a, cy + a), (cx - h, cy + a), (cx - h, cy - a), (cx - a, cy - a),
        ]  # fmt: skip
    raise ValueError(f"shape: expected one of {', '.join(SHAPES)}; got {shape!r}")


def polygon_mask(poly: Polygon, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of pixels whose centre lies inside poly, in pixel units.

    Pixel (i, j) covers [j, j+1) x [i, i+1). Testing centres (even-odd rule) keeps edges hard and
    areas unbiased at every resolution, unlike PIL's fill, which also paints boundary pixels.
    """
    p = np.asarray(poly, dtype=np.float64)
    xa, ya = p[:, 0], p[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    mask = np.zeros((height, width), dtype=bool)
    i0, i1 = max(int(np.floor(ya.min())), 0), min(int(np.ceil(ya.max())), height)
    j0, j1 = max(int(np.floor(xa.min())), 0), min(int(np.ceil(xa.max())), width)
    if i0 >= i1 or j0 >= j1:
        return mask
    py = np.arange(i0, i1, dtype=np.float64)[:, None, None] + 0.5  # (h, 1, 1)
    px = np.arange(j0, j1, dtype=np.float64)[None, :, None] + 0.5  # (1, w, 1)
    crosses = (ya > py) != (yb > py)  # (h, 1, E) edge spans the row
    xcut = xa + (py - ya) / np.where(yb == ya, 1.0, yb - ya) * (xb - xa)  # (h, 1, E)
    mask[i0:i1, j0:j1] = (crosses & (px < xcut)).sum(-1) % 2 == 1
    return mask


def shape_mask(shape: str, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """Boolean (size, size) mask of one shape; geometry in units of the image side."""
    return polygon_mask([(x * size, y * size) for x, y in shape_polygon(shape, cx, cy, side)], size, size)


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Render a scene as a uint8 (size, size, 3) RGB array with flat colours and hard edges."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene: expected Scene, got {type(scene).__name__}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size: expected an int >= 8, got {size!r}")
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = COLOURS[scene.background]
    for o in scene.objects:
        img[shape_mask(o.shape, o.cx, o.cy, o.side, size)] = COLOURS[o.colour]
    return img
