"""Text prompts for shapes-world specs: describe() and its inverse parse_prompt()."""

from __future__ import annotations

import re

from .world import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, ObjectSpec, SceneSpec

_BACKGROUND = re.compile(r"^(?P<body>.*?)\s+on\s+an?\s+(?P<bg>\S+)\s+background\.?$")
_OBJECT = re.compile(r"^an?\s+(?P<words>.+?)(?:\s+in\s+the\s+(?P<pos>.+))?$")
_ALIASES = {"centre": "center", "middle": "center"}


def describe(spec: SceneSpec) -> str:
    """Canonical prompt for a spec, e.g. "a small red circle in the top left on a blue background"."""
    if not isinstance(spec, SceneSpec):
        raise TypeError(f"spec: expected SceneSpec, got {type(spec).__name__}")
    if len(spec.objects) > 1 and any(o.size or o.position for o in spec.objects):
        raise ValueError(f"spec: two-object prompts carry no size or position words, got {spec}")
    objs = " and ".join(_describe_object(o) for o in spec.objects)
    return f"{objs} on {_article(spec.background)} {spec.background} background"


def _describe_object(o: ObjectSpec) -> str:
    """Noun phrase for one object, e.g. "a large red circle in the center"."""
    words = " ".join(w for w in (o.size, o.colour, o.shape) if w)
    where = f" in the {o.position}" if o.position else ""
    return f"{_article(words)} {words}{where}"


def _article(word: str) -> str:
    """Indefinite article for the word that follows it."""
    return "an" if word[0] in "aeiou" else "a"


def parse_prompt(text: str) -> SceneSpec:
    """Spec of a prompt in one of describe()'s forms; ignores case and extra whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    norm = " ".join(text.lower().split())
    m = _BACKGROUND.match(norm)
    if m is None:
        raise ValueError(f"prompt {text!r}: expected it to end with 'on a <colour> background'")
    bg = _word(text, "background colour", m["bg"], COLOUR_NAMES)
    parts = m["body"].split(" and ")
    if len(parts) > 2:
        raise ValueError(f"prompt {text!r}: at most two objects are supported, got {len(parts)}")
    objs = tuple(_parse_object(text, p) for p in parts)
    if len(objs) > 1 and any(o.size or o.position for o in objs):
        raise ValueError(f"prompt {text!r}: size and position words need a single-object prompt")
    try:
        return SceneSpec(bg, objs)
    except ValueError as e:
        raise ValueError(f"prompt {text!r}: {e}") from e


def _parse_object(text: str, phrase: str) -> ObjectSpec:
    """ObjectSpec of a phrase like "a small red circle in the top left"."""
    m = _OBJECT.match(phrase)
    if m is None:
        raise ValueError(f"prompt {text!r}: expected 'a <colour> <shape>', got {phrase!r}")
    words = m["words"].split(" ")
    size = None
    if len(words) == 3:
        size = _word(text, "size", words.pop(0), SIZES)
    if len(words) != 2:
        raise ValueError(f"prompt {text!r}: expected '[small|large] <colour> <shape>', got {m['words']!r}")
    colour = _word(text, "colour", words[0], COLOUR_NAMES)
    shape = _word(text, "shape", words[1], SHAPES)
    pos = m["pos"]
    if pos is not None:
        pos = _word(text, "position", _ALIASES.get(pos, pos), POSITIONS)
    return ObjectSpec(colour, shape, size, pos)


def _word(text: str, what: str, word: str, allowed: tuple[str, ...]) -> str:
    """word if it is one of allowed, else a ValueError naming the prompt and the part."""
    if word not in allowed:
        raise ValueError(f"prompt {text!r}: unknown {what} {word!r}; expected one of {', '.join(allowed)}")
    return word
