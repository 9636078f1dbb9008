"""Read a generated shapes-world image back: background, objects, and a check against a spec."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import permutations

import numpy as np

from .render import polygon_mask, shape_polygon
from .world import (
    COLOUR_NAMES,
    COLOURS,
    POSITION_CENTRES,
    POSITIONS,
    SHAPES,
    SIZE_SIDE,
    ObjectSpec,
    SceneSpec,
)

_PALETTE = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.float32)  # (8, 3)
MIN_AREA_AT_64 = 8  # components smaller than this (pixels at 64x64) are speckles
MIN_CORE = 2  # a real object keeps at least this many pixels after a 3x3 erosion
MIX_PENALTY = 12.0  # RGB distance a pure colour may lose by before a blend of two wins
MERGE_RATIO = 0.25  # a fragment this much smaller than a same-colour neighbour joins it
WINDOW_PAD = 3  # pixels of context around an object's box for shape fitting
SUPERSAMPLE = 4  # sub-pixel steps per pixel when rasterising a candidate shape
SIZE_THRESHOLD = (SIZE_SIDE["small"] + SIZE_SIDE["large"]) / 2


@dataclass(frozen=True)
class DetectedObject:
    """One object found in an image; bbox is (x0, y0, x1, y1) in pixels, end-exclusive."""

    colour: str
    shape: str
    size: str
    position: str
    bbox: tuple[int, int, int, int]
    area: int
    iou: float  # soft IoU of the object's colour coverage with the fitted shape, in [0, 1]


@dataclass(frozen=True)
class Analysis:
    """Background colour and the objects found in an image."""

    background: str
    objects: tuple[DetectedObject, ...]


@dataclass(frozen=True)
class CheckResult:
    """How an image matches a spec; size and position are None when the spec does not ask."""

    background: bool
    objects: bool
    colour: bool
    shape: bool
    size: bool | None
    position: bool | None
    count: bool
    ok: bool
    matched: int = 0  # asked objects found with their colour and shape (the best assignment)


def analyze(image: np.ndarray) -> Analysis:
    """Background and objects of a square uint8 (S, S, 3) RGB image of the shapes world."""
    img = _check_image(image)
    h, w, _ = img.shape
    min_area = max(3, round(MIN_AREA_AT_64 * h * w / 64**2))
    # 1. Nearest palette colour per pixel; the most common one is the background.
    pure = _nearest(img)
    bg = int(np.bincount(pure.ravel(), minlength=len(COLOUR_NAMES)).argmax())
    # 2. Colours present as solid regions. Blurred edges blend two colours into pixels that
    # lie near a third one (red+yellow ~ orange); those form thin rings with no solid core.
    present = [bg] + [c for c in range(len(COLOUR_NAMES)) if c != bg and _has_core(pure == c, min_area)]
    # 3. Relabel with only the present colours, explaining edge pixels as blends with bg.
    labels = _unmix(img, present, bg)
    objs = []
    for c in present[1:]:
        for mask in _objects_of(labels == c, min_area):
            objs.append(_describe(img, mask, labels, c, bg))
    objs.sort(key=lambda o: (o.bbox[1], o.bbox[0]))
    return Analysis(COLOUR_NAMES[bg], tuple(objs))


def check(spec: SceneSpec, image: np.ndarray) -> CheckResult:
    """Whether an image shows what spec asks for; objects are matched in any order."""
    if not isinstance(spec, SceneSpec):
        raise TypeError(f"spec: expected SceneSpec, got {type(spec).__name__}")
    found = analyze(image)
    asked = spec.objects
    det = found.objects
    best = max(_assignments(len(asked), len(det)), key=lambda a: _score(asked, det, a))
    pairs = [(o, det[j]) for o, j in zip(asked, best, strict=True) if j is not None]
    full = len(pairs) == len(asked)
    colour = full and all(o.colour == d.colour for o, d in pairs)
    shape = full and all(o.shape == d.shape for o, d in pairs)
    size = position = None
    if any(o.size for o in asked):
        size = full and all(o.size in (None, d.size) for o, d in pairs)
    if any(o.position for o in asked):
        position = full and all(o.position in (None, d.position) for o, d in pairs)
    background = found.background == spec.background
    count = len(det) == len(asked)
    objects = colour and shape
    ok = background and objects and count and size is not False and position is not False
    matched = sum(o.colour == d.colour and o.shape == d.shape for o, d in pairs)
    return CheckResult(background, objects, colour, shape, size, position, count, ok, matched)


def _assignments(n_asked: int, n_found: int) -> list[tuple[int | None, ...]]:
    """Every injective map of asked objects to found ones (None where too few were found)."""
    idx: list[int | None] = list(range(n_found)) + [None] * max(0, n_asked - n_found)
    return list(set(permutations(idx, n_asked)))


def _score(
    asked: tuple[ObjectSpec, ...], det: tuple[DetectedObject, ...], a: tuple[int | None, ...]
) -> tuple[int, int, int]:
    """Rank of an assignment: full matches, then attribute matches, then a stable tie-break."""
    full = attrs = 0
    for o, j in zip(asked, a, strict=True):
        if j is None:
            continue
        d = det[j]
        hits = [o.colour == d.colour, o.shape == d.shape]
        full += all(hits)
        attrs += sum(hits) + (o.size == d.size) + (o.position == d.position)
    return full, attrs, -sum(j if j is not None else 99 for j in a)


def _check_image(image: np.ndarray) -> np.ndarray:
    """The image as float32 (S, S, 3), or a ValueError/TypeError naming `image`."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image: expected dtype uint8 (RGB 0..255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.shape[0] < 8:
        raise ValueError(f"image: expected a square RGB array (S, S, 3) with S >= 8, got shape {image.shape}")
    return image.astype(np.float32)


def _nearest(img: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour per pixel, (H, W) int."""
    d = ((img[:, :, None, :] - _PALETTE) ** 2).sum(-1)  # (H, W, 8)
    return d.argmin(-1)


def _unmix(img: np.ndarray, present: list[int], bg: int) -> np.ndarray:
    """Per pixel, the present colour that best explains it, pure or as a blend with bg (H, W)."""
    p = img - _PALETTE[bg]  # (H, W, 3)
    cands = [np.linalg.norm(img - _PALETTE[c], axis=-1) for c in present]
    labels = list(present)
    for c in present[1:]:
        v = _PALETTE[c] - _PALETTE[bg]
        alpha = np.clip((p @ v) / (v @ v), 0.0, 1.0)  # (H, W) share of c in a c/bg blend
        d = np.linalg.norm(p - alpha[..., None] * v, axis=-1) + MIX_PENALTY
        cands += [np.where(alpha >= 0.5, d, np.inf), np.where(alpha < 0.5, d, np.inf)]
        labels += [c, bg]
    best = np.stack(cands).argmin(0)  # (H, W)
    return np.asarray(labels)[best]


def _erode(mask: np.ndarray) -> np.ndarray:
    """3x3 binary erosion; pixels outside the image count as unset."""
    m = np.pad(mask, 1)
    out = np.ones_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out &= m[dy : dy + h, dx : dx + w]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation."""
    m = np.pad(mask, 1)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out |= m[dy : dy + h, dx : dx + w]
    return out


def _has_core(mask: np.ndarray, min_area: int) -> bool:
    """True if mask has enough pixels and some survive a 3x3 erosion."""
    return int(mask.sum()) >= min_area and int(_erode(mask).sum()) >= MIN_CORE


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean (H, W) mask, each as a boolean mask."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)  # (H, W + 1): +1 where a run starts, -1 after it ends
    starts, ends = np.argwhere(step == 1), np.argwhere(step == -1)  # row-major, so they pair up
    runs = [(int(y), int(s), int(e)) for (y, s), e in zip(starts, ends[:, 1], strict=True)]  # end exclusive
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev: list[int] = []
    cur: list[int] = []
    row = -1
    for i, (y, s, e) in enumerate(runs):
        if y != row:
            prev, cur, row = (cur if y == row + 1 else []), [], y
        for j in prev:  # runs touch, diagonals included, if they overlap after widening by 1
            _, ps, pe = runs[j]
            if ps <= e and s <= pe:
                parent[root(j)] = root(i)
        cur.append(i)
    groups: dict[int, np.ndarray] = {}
    for i, (y, s, e) in enumerate(runs):
        g = groups.setdefault(root(i), np.zeros((h, w), dtype=bool))
        g[y, s:e] = True
    return list(groups.values())


def _objects_of(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Object masks of one colour: fragments merged into close big neighbours, specks dropped."""
    comps = sorted(_components(mask), key=lambda m: -int(m.sum()))
    kept: list[np.ndarray] = []
    for m in comps:
        grown = _dilate(_dilate(m))  # reaches pixels within two steps
        host = next((k for k in kept if m.sum() < MERGE_RATIO * k.sum() and (grown & k).any()), None)
        if host is not None:
            host |= m
        elif _has_core(m, min_area):
            kept.append(m.copy())
    return [_fill_holes(m) for m in kept]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask with enclosed background pockets set."""
    outside = np.pad(~mask, 1, constant_values=True)
    filled = np.ones_like(outside)
    for comp in _components(outside):
        if comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any():
            filled &= ~comp
    return filled[1:-1, 1:-1]


def _describe(img: np.ndarray, mask: np.ndarray, labels: np.ndarray, c: int, bg: int) -> DetectedObject:
    """Shape, size and position of one object, fitted to its blur-tolerant coverage map."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    # Window around the object; other objects' pixels and far-away pixels carry no weight.
    wx0, wy0 = max(x0 - WINDOW_PAD, 0), max(y0 - WINDOW_PAD, 0)
    wx1, wy1 = min(x1 + WINDOW_PAD, w), min(y1 + WINDOW_PAD, h)
    near = _dilate(_dilate(mask)) & ((labels == c) | (labels == bg))
    v = _PALETTE[c] - _PALETTE[bg]
    alpha = np.clip(((img - _PALETTE[bg]) @ v) / (v @ v), 0.0, 1.0) * near  # (H, W) coverage
    cov = alpha[wy0:wy1, wx0:wx1]
    # Mass and centroid survive blur, so they fix each candidate's side and centre.
    mass = float(cov.sum())
    if mass < 1.0:  # colour far off the object/background blend line: fall back to the mask
        cov = mask[wy0:wy1, wx0:wx1].astype(np.float32)
        mass = float(cov.sum())
    gy, gx = np.mgrid[wy0:wy1, wx0:wx1] + 0.5
    mx, my = float((cov * gx).sum() / mass), float((cov * gy).sum() / mass)
    best = (-1.0, "", 0.0, 0.0, 0.0)
    for shape in SHAPES:
        fill, ox, oy = _geometry(shape)
        side = float(np.sqrt(mass / fill))  # pixels
        cx, cy = mx - ox * side, my - oy * side
        t = _coverage(shape, cx / w, cy / h, side / w, (wx0, wy0, wx1, wy1), w)
        iou = max(_soft_iou(cov, t), _soft_iou(cov, _box_blur(t)))
        if iou > best[0]:
            best = (iou, shape, cx / w, cy / h, side / w)
    iou, shape, cx, cy, side = best
    size = "large" if side > SIZE_THRESHOLD else "small"
    position = min(
        POSITIONS,
        key=lambda p: (POSITION_CENTRES[p][0] - cx) ** 2 + (POSITION_CENTRES[p][1] - cy) ** 2,
    )
    return DetectedObject(COLOUR_NAMES[c], shape, size, position, (x0, y0, x1, y1), int(mask.sum()), float(iou))


def _coverage(
    shape: str, cx: float, cy: float, side: float, window: tuple[int, int, int, int], size: int
) -> np.ndarray:
    """Pixel coverage in [0, 1] of a shape inside a window of a size x size image, (wh, ww)."""
    x0, y0, x1, y1 = window
    ss = SUPERSAMPLE
    poly = [((x * size - x0) * ss, (y * size - y0) * ss) for x, y in shape_polygon(shape, cx, cy, side)]
    fine = polygon_mask(poly, (x1 - x0) * ss, (y1 - y0) * ss)
    return fine.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3), dtype=np.float32)


def _box_blur(a: np.ndarray) -> np.ndarray:
    """3x3 mean filter with edge replication, as a decoder's soft edges look."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks with values in [0, 1]."""
    return float(np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-6))


@cache
def _geometry(shape: str) -> tuple[float, float, float]:
    """Area and centroid offset (x, y) of a shape, in units of its box side (side = 1)."""
    pts = np.asarray(shape_polygon(shape, 0.0, 0.0, 1.0))
    x, y = pts[:, 0], pts[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return float(abs(area)), float(((x + xn) * cross).sum() / (6 * area)), float(((y + yn) * cross).sum() / (6 * area))
