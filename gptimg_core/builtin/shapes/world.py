"""Vocabulary of the shapes world, scene specs, and sampling of specs and concrete scenes."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 200),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("center", "top left", "top right", "bottom left", "bottom right")

# Geometry is in units of the image side: (0, 0) is the top-left corner, (1, 1) the bottom-right.
SIZE_SIDE: dict[str, float] = {"small": 0.25, "large": 0.5}
POSITION_CENTRES: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
}
MARGIN = 2 / 64  # each object's box grows by 2 px (at 64 px) before the no-overlap test
JITTER = 1.5 / 64  # named positions move by up to 1.5 px (at 64 px)
MAX_OBJECTS = 2

# Share of each prompt form in sample_spec: one bare object, one object with size and/or
# position words (size only, position only, both: a third each), two objects (colour and shape).
FORM_MIX: dict[str, float] = {"plain": 0.25, "attributes": 0.45, "pair": 0.30}
SPLITS: tuple[str, ...] = ("train", "heldout", "any")

CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c, s in product(COLOUR_NAMES, SHAPES))
NUM_CLASSES = len(CLASS_NAMES)

# Every (colour, shape, background) with colour != background, in a fixed order.
VALID_TRIPLES: tuple[tuple[str, str, str], ...] = tuple(
    (c, s, b) for c, s, b in product(COLOUR_NAMES, SHAPES, COLOUR_NAMES) if c != b
)
HELD_OUT_SEED = 20_240_607
HELD_OUT_FRACTION = 0.1


def _held_out_triples() -> frozenset[tuple[str, str, str]]:
    """Fixed 10% of VALID_TRIPLES, drawn once with a constant seed."""
    n = round(HELD_OUT_FRACTION * len(VALID_TRIPLES))
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(VALID_TRIPLES))
    return frozenset(VALID_TRIPLES[i] for i in order[:n])


HELD_OUT_TRIPLES: frozenset[tuple[str, str, str]] = _held_out_triples()
_HELD_OUT_SORTED = sorted(HELD_OUT_TRIPLES)


@dataclass(frozen=True)
class ObjectSpec:
    """One object a prompt asks for; size and position None mean "any"."""

    colour: str
    shape: str
    size: str | None = None
    position: str | None = None

    def __post_init__(self) -> None:
        _check_choice("colour", self.colour, COLOUR_NAMES)
        _check_choice("shape", self.shape, SHAPES)
        if self.size is not None:
            _check_choice("size", self.size, SIZES)
        if self.position is not None:
            _check_choice("position", self.position, POSITIONS)


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for: a background colour and one or two objects."""

    background: str
    objects: tuple[ObjectSpec, ...]

    def __post_init__(self) -> None:
        _check_choice("background", self.background, COLOUR_NAMES)
        if not isinstance(self.objects, tuple) or not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"objects: expected a tuple of 1 to {MAX_OBJECTS} ObjectSpec, got {self.objects!r}")
        for o in self.objects:
            if not isinstance(o, ObjectSpec):
                raise TypeError(f"objects: expected ObjectSpec items, got {type(o).__name__}")
            if o.colour == self.background:
                raise ValueError(f"objects: a {o.colour} {o.shape} cannot sit on a {self.background} background")

    def triples(self) -> tuple[tuple[str, str, str], ...]:
        """The (colour, shape, background) triple of each object."""
        return tuple((o.colour, o.shape, self.background) for o in self.objects)

    @property
    def held_out(self) -> bool:
        """True if any object's triple is in HELD_OUT_TRIPLES."""
        return any(t in HELD_OUT_TRIPLES for t in self.triples())


@dataclass(frozen=True)
class PlacedObject:
    """An object with concrete geometry: centre (cx, cy) and box side, in units of the image side."""

    colour: str
    shape: str
    size: str
    cx: float
    cy: float
    side: float

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the square the shape is drawn in."""
        h = self.side / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


@dataclass(frozen=True)
class Scene:
    """A spec together with the concrete placement of its objects."""

    spec: SceneSpec
    background: str
    objects: tuple[PlacedObject, ...]


def class_id(colour: str, shape: str) -> int:
    """Class index of a (colour, shape) pair: colour_index * 6 + shape_index."""
    _check_choice("colour", colour, COLOUR_NAMES)
    _check_choice("shape", shape, SHAPES)
    return COLOUR_NAMES.index(colour) * len(SHAPES) + SHAPES.index(shape)


def class_name(i: int) -> str:
    """Name "colour shape" of class index i."""
    if not isinstance(i, (int, np.integer)) or not 0 <= i < NUM_CLASSES:
        raise ValueError(f"class_id: expected an int in [0, {NUM_CLASSES}), got {i!r}")
    return CLASS_NAMES[i]


def boxes_overlap(a: PlacedObject, b: PlacedObject, margin: float = MARGIN) -> bool:
    """True if the two objects' boxes, each grown by margin, intersect."""
    ax0, ay0, ax1, ay1 = a.box()
    bx0, by0, bx1, by1 = b.box()
    m = 2 * margin
    return ax0 < bx1 + m and bx0 < ax1 + m and ay0 < by1 + m and by0 < ay1 + m


def sample_spec(rng: np.random.Generator, *, split: str = "train") -> SceneSpec:
    """Random spec of any prompt form (mix FORM_MIX), restricted to a split of HELD_OUT_TRIPLES."""
    _check_choice("split", split, SPLITS)
    form = _pick(rng, tuple(FORM_MIX), p=np.array(tuple(FORM_MIX.values())))
    n = 2 if form == "pair" else 1
    if split == "heldout":
        colour, shape, bg = _pick(rng, _HELD_OUT_SORTED)
        objs = [(colour, shape)]
        if n == 2:
            objs.append(_random_object(rng, bg, exclude=objs[0]))
            rng.shuffle(objs)
    else:
        while True:
            bg = _pick(rng, COLOUR_NAMES)
            objs = [_random_object(rng, bg)]
            if n == 2:
                objs.append(_random_object(rng, bg, exclude=objs[0]))
            if split == "any" or not any((c, s, bg) in HELD_OUT_TRIPLES for c, s in objs):
                break
    size = position = None
    if form == "attributes":
        which = _pick(rng, ("size", "position", "both"))
        if which != "position":
            size = _pick(rng, SIZES)
        if which != "size":
            position = _pick(rng, POSITIONS)
    return SceneSpec(bg, tuple(ObjectSpec(c, s, size, position) for c, s in objs))


def sample_class_spec(rng: np.random.Generator, class_id: int, split: str = "train") -> SceneSpec:
    """Single-object spec of one class on a random background allowed by the split."""
    _check_choice("split", split, SPLITS)
    colour, shape = class_name(class_id).split(" ")
    bgs = [b for b in COLOUR_NAMES if b != colour]
    if split != "any":
        want = split == "heldout"
        bgs = [b for b in bgs if ((colour, shape, b) in HELD_OUT_TRIPLES) == want]
    if not bgs:
        raise ValueError(f"class_id: class {class_id} ({colour} {shape}) has no {split} background")
    return SceneSpec(_pick(rng, bgs), (ObjectSpec(colour, shape),))


def place(spec: SceneSpec, rng: np.random.Generator, *, attempts: int = 1000) -> Scene:
    """Concrete sizes and positions for a spec, objects inside the image and not overlapping."""
    if not isinstance(spec, SceneSpec):
        raise TypeError(f"spec: expected SceneSpec, got {type(spec).__name__}")
    for _ in range(attempts):
        placed: list[PlacedObject] = []
        for o in spec.objects:
            p = _place_one(o, rng)
            if any(boxes_overlap(p, q) for q in placed):
                break
            placed.append(p)
        else:
            return Scene(spec, spec.background, tuple(placed))
    raise ValueError(f"spec: found no overlap-free placement in {attempts} attempts for {spec}")


def in_reading_order(scene: Scene, grid: int = 8) -> Scene:
    """The scene with its spec's objects ordered as a raster scan over a grid x grid token map meets
    them: by the token row of the box's top, then by the centre's column. Placement is kept."""

    def start(o: PlacedObject) -> tuple[int, float]:
        return int(o.box()[1] * grid), o.cx

    order = sorted(range(len(scene.objects)), key=lambda i: start(scene.objects[i]))
    spec = SceneSpec(scene.spec.background, tuple(scene.spec.objects[i] for i in order))
    return Scene(spec, scene.background, tuple(scene.objects[i] for i in order))


def _place_one(o: ObjectSpec, rng: np.random.Generator) -> PlacedObject:
    """Random size (if not given) and centre (jittered named position, or anywhere it fits)."""
    size = o.size or _pick(rng, SIZES)
    side = SIZE_SIDE[size]
    lo, hi = side / 2, 1 - side / 2
    if o.position is None:
        cx, cy = rng.uniform(lo, hi, size=2)
    else:
        cx, cy = np.asarray(POSITION_CENTRES[o.position]) + rng.uniform(-JITTER, JITTER, size=2)
    return PlacedObject(o.colour, o.shape, size, float(np.clip(cx, lo, hi)), float(np.clip(cy, lo, hi)), side)


def _random_object(rng: np.random.Generator, bg: str, exclude: tuple[str, str] | None = None) -> tuple[str, str]:
    """Random (colour, shape) with colour != bg and != exclude."""
    while True:
        obj = (_pick(rng, [c for c in COLOUR_NAMES if c != bg]), _pick(rng, SHAPES))
        if obj != exclude:
            return obj


def _pick(rng: np.random.Generator, items, p: np.ndarray | None = None):
    """One element of a sequence, drawn with rng."""
    return items[int(rng.choice(len(items), p=p))]


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise ValueError naming the argument if value is not one of allowed."""
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(allowed)}; got {value!r}")
